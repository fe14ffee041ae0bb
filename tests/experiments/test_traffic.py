"""``manage.py experiment_simulate``: a real A/B test on the demo world, end to end."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

from experience_app.models import ExperienceInteraction, ServedFeed
from experience_app.services.demo import PRESETS, seed_demo
from experiments_app import serving, traffic
from experiments_app.models import Experiment, Exposure
from reading_app.selectors import facets_cache_clear

SMALL = PRESETS["small"]


@pytest.fixture
def world(db):
    seed_demo(**SMALL)


def _start() -> datetime:
    return (timezone.now() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


def _simulate(*args: str) -> dict:
    out = io.StringIO()
    call_command("experiment_simulate", "--json", *args, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def test_a_simulated_experiment_exposes_both_variants_and_reports_them(world):
    result = _simulate("--days", "2", "--seed", "3", "--start", _start().isoformat())

    experiment = Experiment.objects.get(key=traffic.DEFAULT_KEY)
    assert experiment.status == Experiment.Status.STOPPED
    assert experiment.stop_reason == traffic.STOP_REASON
    assert experiment.salt == traffic.salt_for(3, traffic.DEFAULT_KEY)
    exposed = {v.key: Exposure.objects.filter(variant=v).count() for v in experiment.variants.all()}
    assert exposed["control"] > 0 and exposed["fresher"] > 0
    # Exposures happen at the first home page after the start, in the test period.
    assert not Exposure.objects.filter(
        experiment=experiment, exposed_at__lt=experiment.started_at
    ).exists()

    report = result["report"]
    assert [v["key"] for v in report["variants"]] == ["control", "fresher"]
    assert all(v["users"] > 0 and v["exposures"] > 0 for v in report["variants"])
    assert report["srm"] is not None and 0.0 <= report["srm"]["p_value"] <= 1.0
    ctr = report["metrics"]["home_ctr"]
    assert ctr["roles"] == ["primary"]
    assert ctr["comparisons"][0]["variant"] == "fresher"
    assert ctr["cuped"] is not None  # the pre-period gives CUPED a covariate
    assert {g["metric"] for g in report["guardrails"]} == {"dismiss_rate", "latency_p95"}

    summary = result["simulation"]
    assert summary["sessions"] > 0 and summary["interactions"]["impression"] > 0
    assert summary["interactions"].get("rejected", 0) == 0
    assert summary["items_published"] > 0
    # The client reported against what was served: the response's request ids.
    served = set(ServedFeed.objects.values_list("request_id", flat=True))
    assert summary["served_flushed"] == len(served) >= summary["sessions"]
    reported = set(
        ExperienceInteraction.objects.exclude(request_id=None).values_list("request_id", flat=True)
    )
    assert reported and reported <= served
    # Pre-period pages were served without a variant, test-period pages under one.
    before = ServedFeed.objects.filter(served_at__lt=experiment.started_at)
    assert before.exists() and not before.exclude(experiments={}).exists()
    assert ServedFeed.objects.filter(experiments__has_key=traffic.DEFAULT_KEY).exists()


class _Undo(Exception):
    pass


def _run_then_undo(*args: str) -> dict:
    """The command's output, with everything it wrote to PostgreSQL and Redis undone."""
    state = redis.Redis.from_url(settings.REDIS_STATE_URL)  # raw bytes, for DUMP/RESTORE
    saved = [(key, state.dump(key), state.pttl(key)) for key in state.scan_iter()]
    block = transaction.atomic()
    # Counted as the test case's own block, so the interactions' effects (counters, cache)
    # still run at their own commit inside it (tests/conftest.py), as in a real run.
    block._from_testcase = True
    result: dict = {}
    try:
        with block:
            result = _simulate(*args)
            raise _Undo
    except _Undo:
        pass
    state.flushdb()
    for key, value, ttl in saved:
        state.restore(key, max(ttl, 0), value)
    cache.clear()
    facets_cache_clear()
    serving.reset_cache()
    return result


def _fingerprint(result: dict) -> dict:
    report = result["report"]
    return {
        "simulation": {k: v for k, v in result["simulation"].items() if k != "database"},
        "variants": report["variants"],
        "srm": report["srm"],
        "ctr": report["metrics"]["home_ctr"]["variants"],
        "dismiss": report["metrics"]["dismiss_rate"]["variants"],
    }


def test_the_same_seed_gives_the_same_run(world):
    args = ("--days", "1", "--users", "8", "--seed", "5", "--start", _start().isoformat())
    first = _fingerprint(_run_then_undo(*args))
    second = _fingerprint(_run_then_undo(*args))
    assert first == second
    assert first["simulation"]["sessions"] > 0


def test_refuses_without_a_demo_world_or_with_a_bad_config(db):
    with pytest.raises(CommandError, match="seed_demo"):
        _simulate("--days", "1")
    with pytest.raises(CommandError, match=r"weights\.freshness"):
        _simulate("--variant-config", '{"weights": {"freshness": 99}}')
    with pytest.raises(CommandError, match="not JSON"):
        _simulate("--variant-config", "{")
    with pytest.raises(CommandError, match="days"):
        _simulate("--days", "0")


def test_a_taken_key_is_refused(world):
    _simulate("--days", "1", "--users", "2", "--start", _start().isoformat())
    with pytest.raises(CommandError, match="exists already"):
        _simulate("--days", "1", "--users", "2")


def test_a_second_run_with_the_same_seed_stores_all_its_events(world):
    """Event ids are the client's idempotency keys: another run's never collide."""
    runs = [
        _simulate("--key", key, "--days", "1", "--users", "3", "--seed", "9")["simulation"]
        for key in ("sim-a", "sim-b")
    ]
    posted = sum(n for run in runs for kind, n in run["interactions"].items() if kind != "rejected")
    assert runs[1]["start"] >= runs[0]["end"]  # the second clock starts after the first
    assert ExperienceInteraction.objects.count() == posted > 0


def test_behaviour_model_prefers_taste_and_fresh_issues():
    user = traffic.SimUser(1, 1, 1.0, frozenset({10}), frozenset({1}))
    assert user.taste((1, 10)) > user.taste((1, 11)) > user.taste((2, 20))
    assert traffic.appeal(timedelta(0)) == 1.0
    assert traffic.appeal(timedelta(hours=24)) > traffic.appeal(timedelta(days=7))
    assert traffic.appeal(timedelta(days=365)) == pytest.approx(traffic.FRESH_FLOOR)


def test_sessions_plan_is_seeded_and_ordered():
    users = [traffic.SimUser(i, i, 2.0, frozenset(), frozenset()) for i in (1, 2, 3)]
    start = datetime(2030, 1, 1, tzinfo=UTC)
    plan = traffic.sessions_plan(users, seed=7, start=start, days=3)
    assert plan == traffic.sessions_plan(users, seed=7, start=start, days=3)
    assert plan != traffic.sessions_plan(users, seed=8, start=start, days=3)
    assert plan == sorted(plan)
    assert all(start <= at < start + timedelta(days=3) for at, _, _ in plan)
