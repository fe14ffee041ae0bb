"""Consistent cuts (ADR 0016): events that arrive while reconcile, snapshot or restore run
are neither subtracted nor counted twice, and every counter family is compared.

Traffic is injected inside each job's critical window (between its reads), where the
issue measured the losses; afterwards every counter key must equal a full rebuild from the
event log.
"""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from features_app import counters, cut, pending, reconcile, snapshots
from features_app import public as features
from features_app.models import CounterSnapshot, PendingCount
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.public import item_facets
from tests.factories import CategoryFactory, ItemFactory, UserFactory
from tests.features.utils import counter_state, event, impressions, mark_counters_complete

pytestmark = pytest.mark.django_db

MINUTE = timedelta(minutes=1)


@pytest.fixture
def world():
    tech, food = CategoryFactory(), CategoryFactory()
    users = [UserFactory() for _ in range(3)]
    items = [ItemFactory(categories=[tech]), ItemFactory(categories=[food]), ItemFactory()]
    mark_counters_complete()
    return users, items


def _traffic(users, items, n: int) -> list:
    """``n`` batches as a client sends them: a list, a click on it, a read."""
    now = timezone.now()
    batches = []
    for i in range(n):
        u, it = users[i % len(users)], items[i % len(items)]
        rid = f"req-{i}-{now.timestamp()}"
        batches.append(
            [
                *impressions(u, items, now - 10 * MINUTE, request_id=rid),
                event(u, it, "click", now - 9 * MINUTE, request_id=rid),
                event(u, it, "read", now - 8 * MINUTE, dwell_ms=30_000),
            ]
        )
    return batches


def _ingest_all(batches) -> list[bool]:
    return [features.events_ingest(b).counted for b in batches]


def _full_rebuild() -> dict[str, dict[str, float]]:
    """The counters a restore from the whole log (no snapshot) writes."""
    CounterSnapshot.objects.all().delete()
    snapshots.restore()
    return counter_state()


def _drain() -> None:
    pending.sweep(min_age_seconds=0)
    assert PendingCount.objects.count() == 0


def test_events_counted_during_a_reconcile_are_neither_subtracted_nor_counted_twice(
    world, monkeypatch
):
    users, items = world
    _ingest_all(_traffic(users, items, 3))
    during = _traffic(users, items, 2)
    read_redis = cut.read_redis

    def traffic_between_the_reads(client):
        # The loss: events counted between the log read and the Redis read.
        assert _ingest_all(during) == [False, False]  # stored and pending: counting paused
        return read_redis(client)

    monkeypatch.setattr(cut, "read_redis", traffic_between_the_reads)
    report = reconcile.reconcile()
    monkeypatch.setattr(cut, "read_redis", read_redis)

    assert not report.redis  # (ItemFeature waits for a sync)
    _drain()
    live = counter_state()
    assert live == _full_rebuild()
    assert not reconcile.reconcile().redis


def test_a_batch_counted_whose_row_was_not_yet_dropped_is_in_the_cut_and_never_recounted(world):
    """The process died between counting a batch and dropping its pending row."""
    users, items = world
    batch = _traffic(users, items, 1)[0]
    stored = features.events_store(batch)
    facets = item_facets([e.item_id for e in stored])
    assert counters.apply_batch(stored.batch_id, stored, facets) == counters.APPLIED
    assert PendingCount.objects.count() == 1  # the row outlived the count

    assert not reconcile.reconcile().redis
    report = pending.sweep(min_age_seconds=0)
    assert (report.applied, report.already) == (0, 1)
    assert counter_state() == _full_rebuild()


def test_dry_run_reports_drift_for_every_counter_family_and_changes_nothing(world):
    users, items = world
    _ingest_all(_traffic(users, items, 3))
    client = inbo_redis.state()
    now = timezone.now()
    decay = counters.click_decay()
    epoch = decay.epoch(now.timestamp())
    u, a = users[0], items[0]
    client.hincrby(keys.item_counts(a.id), "impression", 5)
    client.hincrby(keys.item_daily(int(now.timestamp() // 86400), a.id), f"{a.id}:click", 2)
    client.hincrby(keys.user_counts(u.id), "read", 1)
    for kind in ("clicks", "expected"):  # scores are scaled to the epoch: double them
        key = keys.decayed(kind, decay.half_life_hours, epoch)
        client.zadd(key, {str(a.id): 2 * (client.zscore(key, a.id) or 1.0)})
    client.hincrbyfloat(keys.user_affinity(u.id), "c999", 2.5)
    client.hset(keys.user_seen(u.id), a.id, 7)
    client.hset(keys.item_first_seen(), a.id, "1.000")
    before = counter_state()

    out = io.StringIO()
    call_command("reconcile_features", "--dry-run", stdout=out)
    report = out.getvalue()

    for family in (
        "item.impression",
        "daily.click",
        "user.read",
        "decayed_clicks",
        "decayed_expected",
        "affinity",
        "seen",
        "first_seen",
    ):
        assert f" {family} " in report, report
    assert counter_state() == before
    reconcile.reconcile()
    assert not reconcile.reconcile(dry_run=True).redis


def test_a_snapshot_taken_under_traffic_is_not_double_counted_by_the_restore(world, monkeypatch):
    users, items = world
    _ingest_all(_traffic(users, items, 2))
    during = _traffic(users, items, 2)
    read = cut.read

    def traffic_while_copying(client):
        taken = read(client)
        assert _ingest_all(during) == [False, False]
        return taken

    monkeypatch.setattr(cut, "read", traffic_while_copying)
    snapshots.snapshot_take()
    monkeypatch.setattr(cut, "read", read)
    _drain()
    _ingest_all(_traffic(users, items, 2))  # after the snapshot
    live = counter_state()

    inbo_redis.state().flushdb()
    snapshots.restore()
    assert counter_state() == live
    snapshots.restore()  # twice: nothing counted twice
    assert counter_state() == live


def test_events_stored_during_a_restore_are_counted_once_after_it(world, monkeypatch):
    users, items = world
    _ingest_all(_traffic(users, items, 2))
    snapshots.snapshot_take()
    _ingest_all(_traffic(users, items, 1))
    during = _traffic(users, items, 2)
    watermark = cut.watermark

    def traffic_during_the_replay():
        assert _ingest_all(during) == [False, False]
        return watermark()

    inbo_redis.state().flushdb()
    monkeypatch.setattr(cut, "watermark", traffic_during_the_replay)
    snapshots.restore()
    monkeypatch.setattr(cut, "watermark", watermark)
    _drain()
    live = counter_state()
    assert live == _full_rebuild()


def test_redis_back_empty_is_rebuilt_by_the_sweep_before_it_counts_and_the_time_is_measured(
    world,
):
    from monitoring import metrics

    users, items = world
    _ingest_all(_traffic(users, items, 3))
    snapshots.snapshot_take()
    _ingest_all(_traffic(users, items, 1))
    live = counter_state()
    recoveries = metrics.FEATURES_RECOVERIES._value.get()

    inbo_redis.state().flushdb()  # a restart without persistence: no sentinel either
    report = pending.sweep(min_age_seconds=0)

    assert report.restored and report.recovery_seconds is not None
    assert metrics.FEATURES_RECOVERIES._value.get() == recoveries + 1
    assert counter_state() == live
    assert inbo_redis.state().exists(keys.features_sentinel())


def test_counting_resumes_during_the_recount_and_the_repair_keeps_what_it_counted(
    world, monkeypatch
):
    """Counting is paused only while reconcile reads; batches counted during its recount
    survive the repair (by difference; seen and first-seen only if unchanged)."""
    users, items = world
    _ingest_all(_traffic(users, items, 3))
    client = inbo_redis.state()
    u, a = users[0], items[0]
    client.hincrby(keys.item_counts(a.id), "click", 4)  # drift the run must repair
    client.hincrbyfloat(keys.user_affinity(u.id), "c999", 1.5)
    client.hset(keys.user_seen(u.id), a.id, 40)
    rebuild = cut.rebuild
    during = _traffic(users, items, 2)

    def traffic_during_the_recount(at, **options):
        assert _ingest_all(during) == [True, True]  # counted at once: no pause now
        return rebuild(at, **options)

    monkeypatch.setattr(cut, "rebuild", traffic_during_the_recount)
    report = reconcile.reconcile()
    monkeypatch.setattr(cut, "rebuild", rebuild)

    assert report.redis["item.click"].total == 4
    assert {"affinity", "seen"} <= set(report.family_drift())
    live = counter_state()
    assert not reconcile.reconcile().redis  # the second run finds nothing left
    assert counter_state() == live == _full_rebuild()
