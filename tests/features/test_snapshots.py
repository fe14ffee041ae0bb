"""Backups of the Redis counters in PostgreSQL, and restore after Redis lost everything."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from features_app import public as features
from features_app import snapshots
from features_app.models import CounterSnapshot, CounterSnapshotKey, UserEvent
from inbo import keys
from inbo import redis as inbo_redis
from tests.factories import CategoryFactory, ItemFactory, UserFactory
from tests.features.utils import HOUR, T0, event, feature_store_state, impressions

pytestmark = pytest.mark.django_db

DAY = 24 * HOUR


def _world():
    tech, food = CategoryFactory(), CategoryFactory()
    a, b = ItemFactory(categories=[tech]), ItemFactory(categories=[food])
    c = ItemFactory(categories=[tech, food])
    return UserFactory(), UserFactory(), a, b, c


def _before_the_snapshot(u1, u2, a, b, c) -> None:
    features.events_ingest(impressions(u1, [a, b, c], T0, request_id="r1"))
    features.events_ingest(
        [
            event(u1, a, "click", T0 + HOUR, request_id="r1"),
            event(u1, a, "read", T0 + HOUR, dwell_ms=120_000),
            event(u2, c, "impression", T0 - 3 * DAY),
        ]
    )


def _after_the_snapshot(u1, u2, a, b, c) -> None:
    """Batches whose split matters: a list's clicks arrive in a later batch than its
    impressions, and a late click precedes an impression already counted."""
    features.events_ingest(
        [*impressions(u2, [a, b], T0 + 2 * HOUR, request_id="r2"), event(u1, b, "impression")]
    )
    features.events_ingest(
        [
            event(u2, b, "click", T0 + 3 * HOUR, request_id="r2"),
            event(u2, b, "save", T0 + 3 * HOUR),
            event(u1, b, "click", T0 - HOUR),  # offline client: before its impression
            event(u1, c, "dismiss", T0 + 4 * HOUR),
            event(u2, a, "impression", T0 - 30 * DAY),  # moves first_seen back
        ]
    )
    features.events_ingest([event(u1, c, "hide", T0 + 5 * HOUR), event(u2, a, "share")])


def _lose_and_restore() -> str:
    inbo_redis.state().flushdb()
    assert feature_store_state() == {}
    out = io.StringIO()
    call_command("restore_counters", stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_snapshot_command_copies_counter_keys_but_not_locks():
    u1, u2, *items = _world()
    _before_the_snapshot(u1, u2, *items)
    client = inbo_redis.state()
    client.set(keys.features_lock("other"), "token")
    client.hset(keys.features_job_status("sync"), "synced", 1)
    client.set(keys.beat_heartbeat(), "1")  # not a feature-store key

    out = io.StringIO()
    call_command("snapshot_counters", stdout=out)

    snapshot = CounterSnapshot.objects.get()
    stored = set(CounterSnapshotKey.objects.values_list("key", flat=True))
    assert stored == set(feature_store_state())
    assert keys.dirty_items() in stored  # unsynced items are remembered too
    assert snapshot.complete and snapshot.key_count == len(stored)
    assert snapshot.last_event_id == UserEvent.objects.latest("id").id
    assert f"snapshot {snapshot.pk}: {len(stored)} keys" in out.getvalue()


def test_only_the_last_three_snapshots_are_kept():
    u1, u2, *items = _world()
    _before_the_snapshot(u1, u2, *items)
    taken = [snapshots.snapshot_take().pk for _ in range(5)]
    assert list(CounterSnapshot.objects.values_list("pk", flat=True)) == taken[:-4:-1]


def test_a_snapshot_is_refused_while_one_is_being_taken():
    lock = inbo_redis.state().lock(keys.features_lock("snapshot"), timeout=60)
    assert lock.acquire(blocking=False)
    with pytest.raises(CommandError, match="already being taken"):
        call_command("snapshot_counters", stdout=io.StringIO())
    lock.release()


def test_flushdb_then_restore_brings_back_every_counter():
    world = _world()
    _before_the_snapshot(*world)
    call_command("snapshot_counters", stdout=io.StringIO())
    _after_the_snapshot(*world)
    before = feature_store_state()
    ttls = {key: inbo_redis.state().ttl(key) for key in before}

    out = _lose_and_restore()

    assert feature_store_state() == before
    snapshot = CounterSnapshot.objects.get()
    assert f"from snapshot {snapshot.pk}, replayed 10 events" in out
    client = inbo_redis.state()
    for key, ttl in ttls.items():  # expiring keys expire again, lasting ones last
        assert (client.ttl(key) > 0) == (ttl > 0), key


def test_restore_without_any_snapshot_replays_the_whole_log():
    world = _world()
    _before_the_snapshot(*world)
    _after_the_snapshot(*world)
    before = feature_store_state()

    out = _lose_and_restore()

    assert feature_store_state() == before
    assert "from no snapshot, replayed 16 events" in out


def test_restore_after_a_restart_without_persistence(redis_state_server):
    world = _world()
    _before_the_snapshot(*world)
    call_command("snapshot_counters", stdout=io.StringIO())
    _after_the_snapshot(*world)
    before = feature_store_state()
    assert before

    redis_state_server.stop()
    redis_state_server.start()  # no RDB, no AOF: it comes back empty
    assert redis_state_server.client().dbsize() == 0

    call_command("restore_counters", stdout=io.StringIO(), stderr=io.StringIO())

    assert feature_store_state() == before


def test_restoring_twice_counts_nothing_twice():
    world = _world()
    _before_the_snapshot(*world)
    call_command("snapshot_counters", stdout=io.StringIO())
    _after_the_snapshot(*world)
    before = feature_store_state()

    _lose_and_restore()
    call_command("restore_counters", stdout=io.StringIO(), stderr=io.StringIO())

    assert feature_store_state() == before


def test_counters_written_after_redis_came_back_are_not_counted_twice():
    """Ingestion resumes as soon as Redis answers; the restore comes later."""
    u1, u2, a, b, c = _world()
    _before_the_snapshot(u1, u2, a, b, c)
    call_command("snapshot_counters", stdout=io.StringIO())
    _after_the_snapshot(u1, u2, a, b, c)
    new_user, new_item = UserFactory(), ItemFactory()
    inbo_redis.state().flushdb()  # lost...
    features.events_ingest([event(new_user, new_item, "click", T0 + 9 * DAY)])  # ...back
    features.events_ingest([event(u1, a, "save", T0 + 9 * DAY)])
    expected_clicks = features.item_signals([new_item.id], now=T0)[new_item.id].clicks
    assert expected_clicks == 1

    call_command("restore_counters", stdout=io.StringIO(), stderr=io.StringIO())

    signals = features.item_signals([new_item.id, a.id], now=T0)
    assert signals[new_item.id].clicks == 1
    assert signals[a.id].saves == 1
    assert features.user_profile(new_user.id).event_counts == {"click": 1}


def test_a_replay_in_small_chunks_keeps_each_stored_batch_whole(monkeypatch):
    world = _world()
    _before_the_snapshot(*world)
    _after_the_snapshot(*world)  # stored batches of 3, 3, 3, 5 and 2 events
    before = feature_store_state()
    monkeypatch.setattr(snapshots, "REPLAY_BATCH", 4)  # every chunk would cut a batch
    seen: list[int] = []

    inbo_redis.state().flushdb()
    report = snapshots.restore(progress=seen.append)

    assert feature_store_state() == before
    assert report.events_replayed == sum(seen) == 16
    # A chunk takes the rest of every batch it has begun: 4 rows end inside the second
    # batch, so the first chunk is 3 + 3; the batch of 5 stays whole although larger.
    assert seen == [6, 3, 5, 2]


def test_restore_is_refused_while_a_snapshot_is_being_taken():
    """A snapshot holds the counting pause; a restore needs it too."""
    client = inbo_redis.state()
    client.set(keys.features_counting_paused(), "snapshot:someone", px=60_000)
    with pytest.raises(CommandError, match="paused by snapshot"):
        call_command("restore_counters", stdout=io.StringIO(), stderr=io.StringIO())
    client.delete(keys.features_counting_paused())


def test_a_replay_keeps_batches_whole_when_concurrent_inserts_interleaved_their_ids(
    monkeypatch,
):
    """Two batches stored at once take ids from the sequence in turn: in id order their
    rows alternate, and a chunk boundary must still not split either (a list's click rate
    is worked out within its batch)."""
    u1, u2, a, b, c = _world()
    first = [*impressions(u1, [a, b, c], T0, request_id="r1"), event(u1, a, "click", T0)]
    second = [*impressions(u2, [a, b, c], T0, request_id="r2")]
    second.append(event(u2, b, "click", T0, request_id="r2"))
    first[3] = event(u1, a, "click", T0, request_id="r1")
    interleaved = [e for pair in zip(first, second, strict=True) for e in pair]
    features.events_store(interleaved)
    ids = list(UserEvent.objects.order_by("id").values_list("id", flat=True))
    UserEvent.objects.filter(id__in=ids[0::2]).update(received_at=T0)
    UserEvent.objects.filter(id__in=ids[1::2]).update(received_at=T0 + HOUR)
    client = inbo_redis.state()
    client.flushdb()
    features.events_count(first)  # as ingestion counts two batches
    features.events_count(second)
    as_ingested = feature_store_state()

    monkeypatch.setattr(snapshots, "REPLAY_BATCH", 3)
    client.flushdb()
    CounterSnapshot.objects.all().delete()
    snapshots.restore()
    assert feature_store_state() == as_ingested
