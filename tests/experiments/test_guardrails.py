"""Guardrails that stop experiments (experiments_app.services.guardrails and the beat task):
a treatment that harms a guardrail beyond the sequential boundary is stopped with a reason,
counted for Prometheus and logged; too few users, or no harm, stop nothing."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connections
from prometheus_client import REGISTRY

from experience_app.models import ExperienceInteraction, ServedFeed
from experiments_app import tasks
from experiments_app.models import Experiment
from experiments_app.services import guardrails
from experiments_app.services.report import experiment_report
from tests.experiments.test_metrics import NOW, running
from tests.experiments.test_report import _bulk_exposed
from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db
STARTED = NOW - timedelta(days=7)
EXPOSED = STARTED + timedelta(hours=1)


def _stops(key: str, metric: str) -> float:
    labels = {"experiment": key, "metric": metric}
    return REGISTRY.get_sample_value("inbo_experiment_guardrail_stops_total", labels) or 0.0


def harmful_world(key: str, *, users: int = 120, dismissals=(0.25, 4), latency=(100, 100)):
    """``users`` per arm, one home page of 10 items each (at the latencies given for control
    and treatment, plus a little spread); control users dismiss ``dismissals[0]`` items on
    average (every 4th user one), treatment users ``dismissals[1]`` each."""
    experiment = running(key, start=STARTED, guardrails=["dismiss_rate", "latency_p95"])
    ids = _bulk_exposed(experiment, {"control": users, "treat": users}, at=EXPOSED)
    item = ItemFactory()
    served, interactions = [], []
    for arm, base_latency in (("control", latency[0]), ("treat", latency[1])):
        for n, uid in enumerate(ids[arm]):
            at = EXPOSED + timedelta(days=1, minutes=n)
            served.append(
                ServedFeed(
                    user_id=uid,
                    served_at=at,
                    items=[{"item_id": i} for i in range(10)],
                    experiments={key: arm},
                    latency_ms=base_latency + n % 10,
                )
            )
            if arm == "control":
                count = 1 if n % 4 == 0 and dismissals[0] else 0
            else:
                count = dismissals[1]
            interactions += [
                ExperienceInteraction(
                    user_id=uid,
                    item=item,
                    interaction_type="dismiss",
                    section="for_you",
                    occurred_at=at + timedelta(seconds=k + 1),
                    event_id=uuid.uuid4(),
                )
                for k in range(count)
            ]
    ServedFeed.objects.bulk_create(served)
    ExperienceInteraction.objects.bulk_create(interactions)
    return experiment


def test_many_dismissals_stop_the_experiment_with_a_reason_a_count_and_a_log(caplog):
    experiment = harmful_world("harm")
    before = _stops("harm", "dismiss_rate")
    with caplog.at_level(logging.ERROR, logger="experiments_app.services.guardrails"):
        assert guardrails.check_guardrails(now=NOW) == ["harm"]
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.STOPPED
    assert experiment.stopped_at == NOW
    assert experiment.stop_reason.startswith("guardrail dismiss_rate breached: ")
    assert "treat" in experiment.stop_reason
    assert _stops("harm", "dismiss_rate") == before + 1
    assert any("experiments.guardrail_stop experiment=harm" in r.message for r in caplog.records)
    # A second check finds nothing running.
    assert guardrails.check_guardrails(now=NOW) == []
    assert _stops("harm", "dismiss_rate") == before + 1


def test_the_report_shows_the_breach_before_the_check_acts():
    harmful_world("seen")
    report = experiment_report(Experiment.objects.get(key="seen"), now=NOW)
    dismiss = [g for g in report["guardrails"] if g["metric"] == "dismiss_rate"]
    assert [g["status"] for g in dismiss] == ["breached"]
    assert dismiss[0]["harmful"] == "higher"
    seq = report["metrics"]["dismiss_rate"]["comparisons"][0]["sequential"]
    assert seq["crossed_higher"] and not seq["crossed_lower"]


def test_too_few_users_are_not_judged():
    experiment = harmful_world("small", users=30)
    assert guardrails.check_guardrails(now=NOW) == []
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.RUNNING
    report = experiment_report(experiment, now=NOW, metrics=["dismiss_rate"])
    assert report["guardrails"][0]["enough_users"] is False


def test_a_treatment_that_dismisses_less_is_not_stopped():
    experiment = harmful_world("better", dismissals=(0.25, 0))
    assert guardrails.check_guardrails(now=NOW) == []
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.RUNNING


def test_a_latency_p95_far_above_control_stops_the_experiment():
    experiment = harmful_world("slow", dismissals=(0.25, 0), latency=(100, 180))
    before = _stops("slow", "latency_p95")
    assert tasks.check_guardrails() == ["slow"]  # the beat task, run in the test's process
    experiment.refresh_from_db()
    assert experiment.stop_reason.startswith("guardrail latency_p95 breached: p95 ")
    assert _stops("slow", "latency_p95") == before + 1


def test_a_latency_within_the_limit_is_ok(settings):
    settings.EXPERIMENTS_LATENCY_GUARDRAIL = 0.9
    experiment = harmful_world("fast-enough", dismissals=(0.25, 0), latency=(100, 180))
    assert guardrails.check_guardrails(now=NOW) == []
    experiment.refresh_from_db()
    assert experiment.status == Experiment.Status.RUNNING


def test_a_check_while_another_holds_the_lock_does_nothing():
    experiment = harmful_world("locked")
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [guardrails._LOCK_ID])
        assert guardrails.check_guardrails(now=NOW) == []
        experiment.refresh_from_db()
        assert experiment.status == Experiment.Status.RUNNING
    finally:
        other.close()


def test_the_beat_schedule_runs_the_check_every_15_minutes():
    entry = settings.CELERY_BEAT_SCHEDULE["experiments-check-guardrails"]
    assert entry["task"] == "inbo.experiments.check_guardrails"
    assert entry["schedule"] == 900.0
    assert entry["options"]["expires"] < 900
