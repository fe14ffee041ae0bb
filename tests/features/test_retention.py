"""The retention job (ADR 0026): each log keeps its window, in batches, never a newer row nor
one a running experiment reads; old event-log months are detached with their baselines."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from experience_app.models import ExperienceInteraction, ServedFeed
from experiments_app import public as experiments
from experiments_app.models import Exposure
from experiments_app.services import lifecycle
from experiments_app.services.validation import VariantSpec
from features_app import partitions, reconcile, retention, sync, tasks
from features_app import public as features
from features_app.models import DetachedMonth
from inbo import keys
from inbo import redis as inbo_redis
from monitoring import metrics
from search_app.models import SearchClick, SearchLog
from tests.factories import ItemFactory, UserFactory
from tests.features.utils import event

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
NOW = timezone.now().replace(microsecond=0)


@pytest.fixture(autouse=True)
def windows(settings):
    settings.RETENTION_SERVED_DAYS = 30
    settings.RETENTION_INTERACTIONS_DAYS = 30
    settings.RETENTION_SEARCH_LOG_DAYS = 10
    settings.RETENTION_EXPOSURES_DAYS = 30
    settings.RETENTION_EVENT_LOG_MONTHS = 0
    settings.RETENTION_BATCH_PAUSE_SECONDS = 0
    return settings


def _served(user, days_ago: float) -> uuid.UUID:
    return ServedFeed.objects.create(user=user, served_at=NOW - days_ago * DAY, items=[]).pk


def _interaction(user, item, kind: str, days_ago: float) -> int:
    return ExperienceInteraction.objects.create(
        user=user,
        item=item,
        interaction_type=kind,
        occurred_at=NOW - days_ago * DAY,
        event_id=uuid.uuid4(),
    ).pk


def _search(days_ago: float) -> SearchLog:
    return SearchLog.objects.create(query="q", backend="postgres", created_at=NOW - days_ago * DAY)


def test_batches_delete_only_rows_past_each_window(windows):
    user, item = UserFactory(), ItemFactory()
    served = {d: _served(user, d) for d in (40, 31, 29, 1)}
    clicks = {d: _interaction(user, item, "click", d) for d in (45, 35, 5)}
    dismissed = _interaction(user, item, "dismiss", 45)  # "never again": kept for good
    old_search, new_search = _search(11), _search(9)
    SearchClick.objects.create(search=old_search, object_id=item.id, position=1)

    dry = retention.run(dry_run=True, now=NOW, only=["served", "interactions", "search"])
    assert {log.name: log.rows for log in dry.logs} == {
        "interactions": 2,
        "search": 1,
        "served": 2,
    }
    assert ServedFeed.objects.count() == 4  # a dry run deletes nothing

    report = retention.run(now=NOW, only=["served", "interactions", "search"], batch_size=1)

    assert dry_by_name(report) == dry_by_name(dry)
    assert set(ServedFeed.objects.values_list("pk", flat=True)) == {served[29], served[1]}
    assert set(ExperienceInteraction.objects.values_list("pk", flat=True)) == {
        clicks[5],
        dismissed,
    }
    assert list(SearchLog.objects.values_list("pk", flat=True)) == [new_search.pk]
    assert not SearchClick.objects.exists()  # the search's clicks went with it
    served_log = next(log for log in report.logs if log.name == "served")
    assert served_log.oldest == NOW - 29 * DAY
    assert served_log.cutoff == NOW - 30 * DAY and not served_log.held


def dry_by_name(report) -> dict[str, int]:
    return {log.name: log.rows for log in report.logs}


def _experiment(key: str, started: datetime):
    experiment = lifecycle.experiment_create(
        key=key,
        hypothesis="Retention keeps what a running experiment reads.",
        layer_key=f"layer-{key}",
        variants=[VariantSpec("control", 50, True), VariantSpec("treat", 50)],
    )
    return lifecycle.experiment_start(experiment, at=started)


def test_a_running_experiment_keeps_what_its_report_reads(windows):
    user, other, item = UserFactory(), UserFactory(), ItemFactory()
    running = _experiment("running", NOW - 60 * DAY)
    stopped = _experiment("stopped", NOW - 300 * DAY)
    lifecycle.experiment_stop(stopped, at=NOW - 200 * DAY)
    experiments.log_exposure(running, running.variants.get(key="treat"), user.id, NOW - 59 * DAY)
    experiments.log_exposure(stopped, stopped.variants.get(key="treat"), other.id, NOW - 299 * DAY)
    # The running experiment reads from 14 days before its start: 74 days back.
    kept_served, gone_served = _served(user, 70), _served(user, 80)
    kept_click = _interaction(user, item, "click", 73)

    report = retention.run(now=NOW, only=["served", "interactions", "exposures"])

    assert set(ServedFeed.objects.values_list("pk", flat=True)) == {kept_served}
    assert gone_served not in set(ServedFeed.objects.values_list("pk", flat=True))
    assert list(ExperienceInteraction.objects.values_list("pk", flat=True)) == [kept_click]
    # Exposures: the running experiment's stay, the long-stopped one's go.
    assert list(Exposure.objects.values_list("experiment__key", flat=True)) == ["running"]
    served_log = next(log for log in report.logs if log.name == "served")
    assert served_log.held and served_log.cutoff == NOW - 74 * DAY


def test_old_event_log_months_are_detached_with_their_baseline(windows):
    windows.RETENTION_EVENT_LOG_MONTHS = 1
    partitions.forget()
    this_month = partitions.month_start(NOW)
    older = partitions.add_months(this_month, -2)
    at = datetime(older.year, older.month, 12, 9, tzinfo=UTC)
    user, item = UserFactory(), ItemFactory()
    features.events_ingest([event(user, item, "impression", at), event(user, item, "click", at)])
    features.events_ingest([event(user, item, "read", NOW - timedelta(minutes=3))])
    sync.sync_features()
    with connection.cursor() as cursor:  # the test's deferred foreign keys, checked now
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    report = retention.run(now=NOW, only=["event_log"])

    log = report.logs[0]
    assert log.detached == [f"{partitions.DETACHED_PREFIX}{older:%Y_%m}"]
    assert log.rows == 2
    assert DetachedMonth.objects.get().month == older
    assert all(p.month >= partitions.add_months(this_month, -1) for p in attached())
    assert reconcile.reconcile(dry_run=True).total_drift == 0
    partitions.forget()


def test_a_month_that_cannot_be_detached_now_waits_for_the_next_run(windows):
    windows.RETENTION_EVENT_LOG_MONTHS = 1
    partitions.forget()
    older = partitions.add_months(partitions.month_start(NOW), -2)
    user, item = UserFactory(), ItemFactory()
    features.events_ingest(
        [event(user, item, "click", datetime(older.year, older.month, 3, tzinfo=UTC))]
    )
    old_feed = _served(user, 45)
    redis_client = inbo_redis.state()
    redis_client.set(keys.features_counting_paused(), "reconcile:token", px=60_000)
    try:
        report = retention.run(now=NOW, only=["served", "event_log"])
    finally:
        redis_client.delete(keys.features_counting_paused())

    assert not ServedFeed.objects.filter(pk=old_feed).exists()  # the other logs went on
    assert dry_by_name(report)["event_log"] == 0
    assert partitions.partition_name(older) in {p.name for p in attached()}
    assert not DetachedMonth.objects.exists()
    partitions.forget()


def attached():
    return [p for p in partitions.list_partitions() if p.attached]


def test_the_beat_task_runs_under_the_lock_and_reports_ages(windows, client):
    user = UserFactory()
    old = _served(user, 45)
    redis_client = inbo_redis.state()
    redis_client.set(keys.features_lock("retention"), "another run", px=60_000)
    try:
        assert tasks.apply_retention.apply().get() == 0  # busy: skipped, nothing deleted
        assert ServedFeed.objects.filter(pk=old).exists()
    finally:
        redis_client.delete(keys.features_lock("retention"))

    assert tasks.apply_retention.apply().get() >= 1
    assert not ServedFeed.objects.filter(pk=old).exists()
    figures = retention.figures()
    assert figures["served"]["window_seconds"] == pytest.approx(30 * 86400, abs=120)
    assert figures["served"]["oldest_age_seconds"] == 0.0  # the log is empty now
    _served(user, 3)
    retention.run(only=["served"])

    def three_days_old() -> float:
        """The age of a row served three days before NOW (set when the module was imported,
        minutes before this test may run)."""
        return (timezone.now() - (NOW - 3 * DAY)).total_seconds()

    ages = retention.figures()["served"]["oldest_age_seconds"]
    assert ages == pytest.approx(three_days_old(), abs=120)
    status = redis_client.hgetall(keys.features_job_status("retention"))
    assert status["state"] == "ok"

    # What an SRE sees: each log's oldest row against its window, and the rows deleted.
    text = client.get("/metrics").content.decode()
    age = re.search(r'inbo_retention_oldest_row_age_seconds\{log="served"\} (\S+)', text)
    assert age and float(age[1]) == pytest.approx(three_days_old(), abs=120)
    assert 'inbo_retention_window_seconds{log="search"} 864000.0' in text
    assert metrics.RETENTION_ROWS_DELETED.labels(log="served")._value.get() >= 1


def test_the_command_dry_run_changes_nothing(windows):
    user = UserFactory()
    _served(user, 45)
    out = io.StringIO()
    call_command("retention", "--dry-run", "--log", "served", stdout=out)
    assert "served            would delete          1 rows" in out.getvalue()
    assert ServedFeed.objects.count() == 1
    out = io.StringIO()
    call_command("retention", "--log", "served", "--batch-size", "10", stdout=out)
    assert "served: 1 rows deleted so far" in out.getvalue()
    assert ServedFeed.objects.count() == 0


@pytest.mark.parametrize(
    ("env", "refused"),
    [
        ({"RETENTION_SERVED_DAYS": "7"}, "RETENTION_SERVED_DAYS must be at least 15 days"),
        ({"RETENTION_EVENT_LOG_MONTHS": "2"}, "RETENTION_EVENT_LOG_MONTHS must be 0"),
    ],
)
def test_a_window_shorter_than_what_reads_the_log_stops_the_settings(env, refused):
    done = subprocess.run(
        [sys.executable, "-c", "import inbo.settings"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0
    assert refused in done.stderr
