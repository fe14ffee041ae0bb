"""The lock-and-status pattern of the feature-store jobs (ADR 0016)."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from features_app import jobs, pending, reconcile, snapshots, sync
from features_app import public as features
from features_app.models import PendingCount
from inbo import keys
from inbo import redis as inbo_redis
from tests.factories import ItemFactory, UserFactory
from tests.features.utils import event, mark_counters_complete

pytestmark = pytest.mark.django_db


def _wait_until_gone(key: str) -> None:
    client = inbo_redis.state()
    for _ in range(200):
        if not client.exists(key):
            return
        time.sleep(0.02)
    raise AssertionError(f"{key} never expired")


def test_a_job_runs_once_at_a_time_and_records_its_status():
    with jobs.run("probe", ttl_seconds=30) as job:
        with pytest.raises(jobs.JobBusy), jobs.run("probe", ttl_seconds=30):
            pass
        job.status["things"] = 3
    status = inbo_redis.state().hgetall(keys.features_job_status("probe"))
    assert (status["state"], status["things"]) == ("ok", "3")
    assert not inbo_redis.state().exists(keys.features_lock("probe"))


def test_a_failed_job_records_the_failure_and_frees_its_lock():
    with pytest.raises(ZeroDivisionError), jobs.run("probe", ttl_seconds=30):
        1 / 0  # noqa: B018
    status = inbo_redis.state().hgetall(keys.features_job_status("probe"))
    assert (status["state"], status["error"]) == ("failed", "ZeroDivisionError")
    with jobs.run("probe", ttl_seconds=30):
        pass


def test_only_one_job_pauses_counting_at_a_time():
    with jobs.run("snapshot", ttl_seconds=30, pause_counting=True):
        with pytest.raises(jobs.JobBusy, match="paused by snapshot"):
            reconcile.reconcile()
        with pytest.raises(jobs.JobBusy, match="paused by snapshot"):
            snapshots.restore()
    assert not jobs.counting_paused()


def test_a_restore_holds_off_sync_and_reconcile():
    client = inbo_redis.state()
    client.set(keys.features_counting_paused(), "restore:running", px=30_000)
    with pytest.raises(jobs.JobBusy, match="paused by restore"):
        sync.sync_features()
    with pytest.raises(jobs.JobBusy, match="paused by restore"):
        reconcile.reconcile()
    client.delete(keys.features_counting_paused())
    sync.sync_features()


def test_a_killed_jobs_lock_and_pause_expire_and_the_job_runs_again():
    """A job killed without cleanup leaves its lock and pause behind; both have a TTL."""
    user, item = UserFactory(), ItemFactory()
    mark_counters_complete()
    client = inbo_redis.state()
    client.set(keys.features_lock("reconcile"), "reconcile:dead", px=150)
    client.set(keys.features_counting_paused(), "reconcile:dead", px=150)
    with pytest.raises(jobs.JobBusy):
        reconcile.reconcile()
    assert not features.events_ingest([event(user, item, "click", timezone.now())]).counted

    _wait_until_gone(keys.features_counting_paused())
    _wait_until_gone(keys.features_lock("reconcile"))
    assert reconcile.reconcile().total_drift == 0  # the pending click is outside the cut
    assert pending.sweep(min_age_seconds=0).events == 1
    assert features.item_signals([item.id], now=timezone.now())[item.id].clicks == 1


def test_a_renewal_after_the_lock_was_lost_stops_the_job():
    with pytest.raises(jobs.JobLost), jobs.run("probe", ttl_seconds=30) as job:
        inbo_redis.state().set(keys.features_lock("probe"), "probe:other")
        job.renew()
    # The other run's lock is left alone.
    assert inbo_redis.state().get(keys.features_lock("probe")) == "probe:other"


def test_counting_waits_while_paused_and_the_sweep_counts_each_batch_once():
    user, item = UserFactory(), ItemFactory()
    mark_counters_complete()
    with jobs.run("probe", ttl_seconds=30, pause_counting=True):
        result = features.events_ingest([event(user, item, "impression", timezone.now())])
        assert (result.created, result.counted) == (1, False)
        assert pending.sweep(min_age_seconds=0).paused
    assert PendingCount.objects.count() == 1
    assert pending.sweep(min_age_seconds=0).events == 1
    assert pending.sweep(min_age_seconds=0).events == 0
    assert features.item_signals([item.id], now=timezone.now())[item.id].impressions == 1
