"""Reconciliation: recount from the event log, report drift per counter, repair it."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from features_app import counters, pending, reconcile, sync
from features_app import public as features
from features_app.models import CounterQuarantine, ItemFeature, PendingCount, UserEvent
from inbo import keys
from inbo import redis as inbo_redis
from inbo.celery import app
from tests.factories import ItemFactory, UserFactory
from tests.features.utils import event, feature_store_state, mark_counters_complete

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _rows() -> dict[int, dict[str, object]]:
    return {
        f.item_id: {n: getattr(f, n) for n in sync.FEATURE_FIELDS if n != "synced_at"}
        for f in ItemFeature.objects.all()
    }


def _lifetime_state() -> dict[str, object]:
    """Redis keys reconciliation owns: lifetime and daily item counts, user counts."""
    owned = ("item_counts", "item_daily", "user_counts")
    return {
        k: v for k, v in feature_store_state(drop_zeros=True).items() if k.split(":")[2] in owned
    }


@pytest.fixture
def world():
    """Two users, two items, events over 40 days, counted and synced."""
    now = timezone.now()
    u1, u2, a, b = UserFactory(), UserFactory(), ItemFactory(), ItemFactory()
    features.events_ingest(
        [
            event(u1, a, "impression", now - 40 * DAY),
            event(u1, a, "impression", now - 3 * DAY),
            event(u1, a, "click", now - 3 * DAY),
            event(u2, a, "impression", now - timedelta(minutes=5)),
            event(u2, a, "read", now - timedelta(minutes=4), dwell_ms=60_000),
            event(u2, b, "impression", now - timedelta(minutes=5)),
            event(u2, b, "save", now - timedelta(minutes=3)),
        ]
    )
    sync.sync_features()
    return u1, u2, a, b


def _command(*args: str) -> str:
    out = io.StringIO()
    call_command("reconcile_features", *args, stdout=out)
    return out.getvalue()


def _drift_lines(output: str) -> dict[tuple[str, str], tuple[int, int]]:
    """``(store, counter) -> (items, off)`` from the command's report."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"\s+(redis|item_feature)\s+(\S+)\s+(\d+) items\s+(\d+) off", line)
        if match:
            found[(match[1], match[2])] = (int(match[3]), int(match[4]))
    return found


def test_a_sync_of_a_clean_ingest_leaves_no_drift(world):
    report = reconcile.reconcile(dry_run=True)
    assert report.total_drift == 0
    assert (report.items_checked, report.users_checked) == (2, 2)
    assert "total drift 0 (would repair)" in _command("--dry-run")


def test_dry_run_reports_drift_per_counter_and_changes_nothing(world):
    u1, _, a, b = world
    client = inbo_redis.state()
    client.hincrby(keys.item_counts(a.id), "click", 3)  # counted three times too often
    client.delete(keys.item_counts(b.id))  # a lost key
    client.delete(keys.user_counts(u1.id))
    client.hincrby(
        keys.item_daily(int(timezone.now().timestamp() // 86400), a.id), f"{a.id}:read", -1
    )
    ItemFeature.objects.filter(item=b).delete()  # a lost row
    redis_before, rows_before = feature_store_state(), _rows()

    output = _command("--dry-run")

    assert _drift_lines(output) == {
        ("redis", "item.click"): (1, 3),
        ("redis", "item.impression"): (1, 1),  # b's, deleted
        ("redis", "item.save"): (1, 1),
        ("redis", "daily.read"): (1, 1),
        ("redis", "user.impression"): (1, 2),
        ("redis", "user.click"): (1, 1),
        ("item_feature", "impressions"): (1, 1),
        ("item_feature", "impressions_1d"): (1, 1),
        ("item_feature", "impressions_7d"): (1, 1),
        ("item_feature", "impressions_28d"): (1, 1),
        ("item_feature", "saves"): (1, 1),
        ("item_feature", "saves_7d"): (1, 1),
    }
    assert "total drift 15 (would repair)" in output
    assert feature_store_state() == redis_before
    assert _rows() == rows_before


def test_repair_brings_redis_and_item_feature_back_and_a_second_run_finds_nothing(world):
    u1, _, a, b = world
    clean_redis, clean_rows = _lifetime_state(), _rows()
    client = inbo_redis.state()
    client.hincrby(keys.item_counts(a.id), "click", 3)
    client.hincrby(keys.item_counts(a.id), "dwell_ms", -500)
    client.delete(keys.item_counts(b.id))
    client.delete(keys.user_counts(u1.id))
    client.hincrby(
        keys.item_daily(int(timezone.now().timestamp() // 86400), b.id), f"{b.id}:save", 4
    )
    ItemFeature.objects.filter(item=b).delete()
    ItemFeature.objects.filter(item=a).update(clicks=0, dwell_ms=7)

    output = _command()

    assert re.search(r"total drift [1-9]\d* \(repaired\)", output)
    assert _lifetime_state() == clean_redis
    assert _rows() == clean_rows
    assert 0 < client.ttl(keys.user_counts(u1.id)) <= counters.user_idle_seconds()
    again = _command()
    assert "total drift 0 (repaired)" in again
    assert "redis         no drift" in again and "item_feature  no drift" in again


def test_events_stored_but_not_counted_are_pending_and_counted_once_by_the_sweep(world):
    """Stored while Redis was away: outside the counters' cut, so reconcile leaves them to
    the pending sweep, which counts them once; nothing is counted twice after it."""
    u1, _, a, _ = world
    mark_counters_complete()
    features.events_store([event(u1, a, "click", timezone.now())])  # stored, not counted
    assert PendingCount.objects.count() == 1
    assert reconcile.reconcile().total_drift == 0
    assert pending.sweep(min_age_seconds=0).events == 1
    assert PendingCount.objects.count() == 0
    assert features.item_signals([a.id], now=timezone.now())[a.id].clicks == 2
    assert not reconcile.reconcile().redis  # ItemFeature waits for the next sync


def test_counters_of_events_redis_never_saw_are_recounted(world):
    """An event in the log that ingestion never recorded as pending (written around it) is
    in the cut: reconcile counts it in every family."""
    u1, _, a, _ = world
    UserEvent.objects.create(user=u1, item=a, event_type="click", occurred_at=timezone.now())
    report = reconcile.reconcile()
    assert report.redis["item.click"].total == 1
    assert report.redis["decayed_clicks"].total > 0
    assert features.item_signals([a.id], now=timezone.now())[a.id].clicks == 2
    assert ItemFeature.objects.get(item=a).clicks == 2
    assert reconcile.reconcile().total_drift == 0


def test_reconcile_repairs_a_quarantined_item_and_resolves_its_quarantine(world):
    _, _, a, _ = world
    inbo_redis.state().hincrby(keys.item_counts(a.id), "click", 50)
    inbo_redis.state().sadd(keys.dirty_items(), a.id)
    assert sync.sync_features().quarantined == 1
    assert CounterQuarantine.objects.filter(resolved_at=None).count() == 1

    reconcile.reconcile()

    assert CounterQuarantine.objects.filter(resolved_at=None).count() == 0
    assert ItemFeature.objects.get(item=a).clicks == 1
    inbo_redis.state().sadd(keys.dirty_items(), a.id)
    assert sync.sync_features().quarantined == 0  # Redis was repaired too


def test_dwell_is_recounted_as_ingestion_counts_it():
    """Only positive JSON integers are dwell; a float must not break the recount."""
    user, item = UserFactory(), ItemFactory()
    now = timezone.now()
    features.events_ingest(
        [
            event(user, item, "read", now, dwell_ms=3000),
            event(user, item, "read", now, dwell_ms=1.5),
            event(user, item, "read", now, dwell_ms=True),
            event(user, item, "read", now, dwell_ms="400"),
            event(user, item, "read", now, dwell_ms=-20),
            event(user, item, "read", now, dwell_ms=2000.0),
        ]
    )
    assert inbo_redis.state().hget(keys.item_counts(item.id), "dwell_ms") == "3000"
    sync.sync_features()
    assert ItemFeature.objects.get(item=item).dwell_ms == 3000
    assert reconcile.reconcile(dry_run=True).total_drift == 0


def test_a_second_reconcile_is_refused_while_one_runs(world):
    lock = inbo_redis.state().lock(keys.features_lock("reconcile"), timeout=60)
    assert lock.acquire(blocking=False)
    with pytest.raises(reconcile.JobBusy):
        reconcile.reconcile()
    with pytest.raises(CommandError, match="already running"):
        _command()
    app.loader.import_default_modules()
    assert app.tasks["inbo.features.reconcile"].apply().get() == 0
    lock.release()


def test_task_repairs_and_returns_the_drift(world):
    _, _, a, _ = world
    inbo_redis.state().hincrby(keys.item_counts(a.id), "impression", 2)
    app.loader.import_default_modules()
    assert app.tasks["inbo.features.reconcile"].apply().get() == 2
    assert app.tasks["inbo.features.reconcile"].apply().get() == 0
    status = inbo_redis.state().hgetall(keys.features_job_status("reconcile"))
    assert (status["drift"], status["dry_run"]) == ("0", "0")
