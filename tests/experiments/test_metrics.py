"""Metrics per variant in SQL (experiments_app.services.metrics): a small experiment built
through the models and services, every metric checked against a value computed by hand."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from experience_app.models import ExperienceInteraction, ServedFeed
from experiments_app import public as experiments
from experiments_app.models import Experiment
from experiments_app.services import analysis, lifecycle, metrics
from experiments_app.services.report import experiment_report
from experiments_app.services.validation import VariantSpec
from reading_app.models import ReadingProgress
from tests.factories import ItemFactory, UserEventFactory, UserFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
START = NOW - timedelta(days=3)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def running(key: str = "exp", *, start=START, weights=(50, 50), **kw) -> Experiment:
    experiment = lifecycle.experiment_create(
        key=key,
        hypothesis="A new section order lifts home CTR.",
        layer_key=f"layer-{key}",
        variants=[VariantSpec("control", weights[0], True), VariantSpec("treat", weights[1])],
        **kw,
    )
    return lifecycle.experiment_start(experiment, at=start)


def expose(experiment: Experiment, variant_key: str, user, at) -> None:
    variant = experiment.variants.get(key=variant_key)
    assert experiments.log_exposure(experiment, variant, user.id, at)


def served(user, at, n_items: int, *, experiment: Experiment | None = None, variant=None,
           latency_ms=None) -> None:  # fmt: skip
    ServedFeed.objects.create(
        user=user,
        served_at=at,
        items=[{"item_id": i, "section": "for_you", "position": i} for i in range(n_items)],
        experiments={experiment.key: variant} if experiment else {},
        latency_ms=latency_ms,
    )


def interact(user, item, kind: str, at, section: str = "for_you") -> None:
    ExperienceInteraction.objects.create(
        user=user,
        item=item,
        interaction_type=kind,
        section=section,
        occurred_at=at,
        event_id=uuid.uuid4(),
    )


def reading(user, item, progress: float, started, *, completed: bool = False) -> None:
    row = ReadingProgress.objects.create(user=user, item=item, progress=progress)
    ReadingProgress.objects.filter(pk=row.pk).update(
        started_at=started, completed_at=started + HOUR if completed else None
    )


def events(user, item, *times) -> None:
    for at in times:
        UserEventFactory(user=user, item=item, occurred_at=at)


@pytest.fixture
def world():
    """Two users per arm with hand-countable activity (see each metric's test)."""
    exp = running(guardrails=["dismiss_rate", "latency_p95"])
    item, other = ItemFactory(), ItemFactory()
    u1, u2, u3, u4 = (UserFactory() for _ in range(4))
    t1, t2, t3, t4 = START + HOUR, START + 2 * HOUR, START + HOUR, START + 3 * HOUR
    expose(exp, "control", u1, t1)
    expose(exp, "control", u2, t2)
    expose(exp, "treat", u3, t3)
    expose(exp, "treat", u4, t4)
    # Impressions: control 10 + 10, treatment 10 + 10; a pre-period page of 4 for u1 (and
    # a page served before the pre-period, never counted).
    served(u1, t1 + MIN, 5, experiment=exp, variant="control", latency_ms=100)
    served(u1, t1 + 2 * HOUR, 5, experiment=exp, variant="control", latency_ms=200)
    served(u1, t1 - HOUR, 4)
    served(u1, t1 - timedelta(days=20), 50)
    served(u2, t2 + MIN, 10, experiment=exp, variant="control", latency_ms=300)
    served(u3, t3 + MIN, 10, experiment=exp, variant="treat", latency_ms=400)
    served(u4, t4 + MIN, 10, experiment=exp, variant="treat", latency_ms=None)
    # Interactions.
    interact(u1, item, "click", t1 + 2 * MIN)
    interact(u1, item, "click", t1 + 3 * MIN)
    interact(u1, item, "click", t1 + 4 * MIN, section="")  # not a home click
    interact(u1, item, "dismiss", t1 + 5 * MIN)
    interact(u1, item, "read", t1 + 6 * MIN)
    interact(u1, item, "click", t1 - 30 * MIN)  # pre-period
    interact(u2, item, "read", t2 + MIN)
    interact(u2, other, "read", t2 + 2 * MIN)
    for _ in range(3):
        interact(u3, item, "click", t3 + 2 * MIN)
    interact(u3, item, "dismiss", t3 + 3 * MIN)
    interact(u3, other, "dismiss", t3 + 4 * MIN)
    interact(u3, other, "hide", t3 + 5 * MIN)
    interact(u4, item, "click", t4 + 2 * MIN)
    interact(u4, item, "read", t4 - 10 * MIN)  # before the exposure: pre-period
    interact(u4, item, "click", NOW + HOUR)  # after the window
    # Reading progress: u1 0.5 and finished (1.0): 0.75; u2 0.25; u3 0.2; u4 0.4; u3's
    # pre-period reading (0.9) is not in the window.
    reading(u1, item, 0.5, t1 + 10 * MIN)
    reading(u1, other, 0.9, t1 + 20 * MIN, completed=True)
    reading(u2, item, 0.25, t2 + 10 * MIN)
    reading(u3, item, 0.2, t3 + 10 * MIN)
    reading(u3, other, 0.9, t3 - 2 * HOUR)
    reading(u4, item, 0.4, t4 + 10 * MIN)
    # Sessions (gap 30 min): u1 20 min and 5 min -> 750 s; u2 10 min -> 600 s; u3 one of
    # 29 min -> 1740 s; u4 one event -> 0 s. u1's pre-period session is not in the window.
    base = t1 + 5 * HOUR
    events(u1, item, base, base + 10 * MIN, base + 20 * MIN, base + 2 * HOUR, base + 125 * MIN)
    events(u1, item, t1 - 3 * HOUR, t1 - 160 * MIN, t1 - 140 * MIN, t1 - 2 * HOUR)
    events(u2, item, t2 + HOUR, t2 + 70 * MIN)
    events(u3, item, t3 + HOUR, t3 + 89 * MIN)
    events(u4, item, t4 + HOUR)
    return exp


def _means(report, metric):
    return {v["variant"]: v["mean"] for v in report["metrics"][metric]["variants"]}


def _users(report, metric):
    return {v["variant"]: v["users"] for v in report["metrics"][metric]["variants"]}


def test_home_ctr_is_home_clicks_over_home_impressions(world):
    report = experiment_report(world, now=NOW)
    assert _means(report, "home_ctr") == pytest.approx({"control": 2 / 20, "treat": 4 / 20})
    cmp = report["metrics"]["home_ctr"]["comparisons"][0]
    assert cmp["diff"] == pytest.approx(0.1)
    assert cmp["lift"] == pytest.approx(1.0)
    assert report["metrics"]["home_ctr"]["kind"] == "ratio"
    assert report["metrics"]["home_ctr"]["roles"] == ["primary"]


def test_dismiss_rate_counts_dismissals_and_hides_over_impressions(world):
    report = experiment_report(world, now=NOW)
    assert _means(report, "dismiss_rate") == pytest.approx({"control": 1 / 20, "treat": 3 / 20})


def test_reads_per_user_counts_users_without_reads_as_zero(world):
    report = experiment_report(world, now=NOW)
    assert _means(report, "reads_per_user") == pytest.approx({"control": 1.5, "treat": 0.0})
    assert _users(report, "reads_per_user") == {"control": 2, "treat": 2}


def test_mean_depth_averages_each_users_mean_depth_in_the_window(world):
    report = experiment_report(world, now=NOW)
    assert _means(report, "mean_depth") == pytest.approx({"control": 0.5, "treat": 0.3})


def test_session_length_splits_the_event_log_at_30_minute_gaps(world):
    report = experiment_report(world, now=NOW)
    assert _means(report, "session_length") == pytest.approx({"control": 675.0, "treat": 870.0})


def test_a_user_without_sessions_or_reading_is_left_out_of_those_means(world):
    lonely = UserFactory()
    expose(world, "control", lonely, START + HOUR)
    report = experiment_report(world, now=NOW)
    assert _users(report, "session_length") == {"control": 2, "treat": 2}
    assert _users(report, "mean_depth") == {"control": 2, "treat": 2}
    assert _users(report, "reads_per_user") == {"control": 3, "treat": 2}
    assert _means(report, "home_ctr")["control"] == pytest.approx(2 / 20)


def test_pre_period_totals_feed_cuped(world):
    pop = metrics.population(world, now=NOW)
    data = metrics.metric_data(world, pop)
    u1 = 0  # users are ordered by id
    assert data["home_ctr"].pre_num[u1] == 1
    assert data["home_ctr"].pre_den[u1] == 4
    assert data["reads_per_user"].pre_num.sum() == 1  # u4's read before the exposure
    assert data["mean_depth"].pre_num.sum() == pytest.approx(0.9)
    assert data["session_length"].pre_num[u1] == pytest.approx(3600.0)


def test_latency_p95_reads_the_pages_served_under_each_variant(world):
    pop = metrics.population(world, now=NOW)
    samples = metrics.latency_samples(world, pop)
    control, treat = (world.variants.get(key=k).id for k in ("control", "treat"))
    assert samples.served == {control: 3, treat: 2}
    assert sorted(samples.latency_ms[control]) == [100.0, 200.0, 300.0]
    assert list(samples.latency_ms[treat]) == [400.0]
    report = experiment_report(world, now=NOW)
    assert _means(report, "latency_p95")["control"] == pytest.approx(290.0)
    assert [v["exposures"] for v in report["variants"]] == [3, 2]


def test_the_window_ends_when_the_experiment_stopped(world):
    lifecycle.experiment_stop(world, at=START + HOUR + 3 * MIN)
    world.refresh_from_db()
    report = experiment_report(world, now=NOW)
    # Only u1 and u3 were exposed; u1 clicked once (t1 + 2 min) on 5 impressions.
    assert _users(report, "reads_per_user") == {"control": 1, "treat": 1}
    assert _means(report, "home_ctr")["control"] == pytest.approx(1 / 5)


def test_delta_method_matches_a_direct_computation():
    rng = np.random.default_rng(3)
    x = rng.integers(1, 30, size=400).astype(float)
    y = rng.binomial(x.astype(int), 0.1).astype(float)
    r, var, _ = analysis._ratio(y, x)
    assert r == pytest.approx(y.sum() / x.sum())
    # The delta method's variance against a bootstrap of users.
    boots = []
    for _ in range(2000):
        idx = rng.integers(0, 400, size=400)
        boots.append(y[idx].sum() / x[idx].sum())
    assert var == pytest.approx(np.var(boots), rel=0.15)
