"""Day buckets moved from the v1 layout (a hash per day) to v2 (a hash per day and block of
items): readers count both meanwhile, the move counts every field exactly once."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from features_app import counters_migration, reconcile, snapshots, sync
from features_app import public as features
from inbo import keys
from inbo import redis as inbo_redis
from tests.factories import ItemFactory, UserFactory
from tests.features.utils import event, mark_counters_complete

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _to_v1() -> int:
    """Rewrite every v2 day bucket as the v1 layout held it (what the counting of the
    previous release left in Redis). Returns the v1 keys written."""
    client = inbo_redis.state()
    days = set()
    for key in list(client.scan_iter(match=keys.features_pattern())):
        parsed = keys.item_daily_parse(key)
        if parsed is None or parsed[1] is None:
            continue
        day = parsed[0]
        for name, value in client.hgetall(key).items():
            client.hincrby(keys.item_daily_legacy(day), name, int(value))
        client.expire(keys.item_daily_legacy(day), 29 * 86400)
        client.delete(key)
        days.add(day)
    return len(days)


def _daily_keys() -> dict[str, dict[str, str]]:
    client = inbo_redis.state()
    return {
        key: client.hgetall(key)
        for key in client.scan_iter(match=keys.features_pattern())
        if keys.item_daily_parse(key) is not None
    }


def _migrate(*args: str) -> str:
    out = io.StringIO()
    call_command("migrate_counters", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def world():
    """Events over three days counted in the v1 layout, then more counted in v2 (the same
    days): both layouts hold fields of the same items and days."""
    now = timezone.now()
    u1, u2 = UserFactory(), UserFactory()
    a, b, far = ItemFactory(), ItemFactory(), ItemFactory()
    features.events_ingest(
        [
            event(u1, a, "impression", now - 2 * DAY),
            event(u1, a, "click", now - 2 * DAY),
            event(u2, b, "impression", now - DAY),
            event(u2, far, "impression", now - timedelta(minutes=9)),
            event(u2, far, "read", now - timedelta(minutes=8)),
        ]
    )
    mark_counters_complete()
    assert _to_v1() == 3
    features.events_ingest(
        [
            event(u2, a, "impression", now - 2 * DAY),
            event(u2, a, "click", now - timedelta(minutes=5)),
            event(u1, far, "save", now - timedelta(minutes=4)),
        ]
    )
    return now, (a, b, far)


def test_readers_count_both_layouts_and_the_move_counts_each_field_once(world):
    now, items = world
    ids = [i.id for i in items]
    before = sync.read_counters(ids, now=now)
    a, b, far = ids
    assert before[a]["impressions_7d"] == 2 and before[a]["clicks_1d"] == 1
    assert before[a]["clicks_7d"] == 2 and before[b]["impressions_28d"] == 1
    assert before[far]["reads_7d"] == 1 and before[far]["saves_7d"] == 1
    assert not reconcile.reconcile(dry_run=True).redis  # Redis as the log says

    dry = _migrate("--dry-run")
    assert "3 day(s) in the v1 layout" in dry and "would move 5 fields of 3 day(s)" in dry
    assert any(keys.item_daily_parse(k)[1] is None for k in _daily_keys())  # nothing moved

    output = _migrate("--batch", "1")  # one field per step: many steps, each atomic
    assert "moved 5 fields of 3 day(s)" in output
    after = _daily_keys()
    assert all(keys.item_daily_parse(k)[1] is not None for k in after)  # no v1 day left
    client = inbo_redis.state()
    for key in after:
        assert client.object("encoding", key) == "listpack"
        day = keys.item_daily_parse(key)[0]
        assert client.expiretime(key) == keys.item_daily_expires_at(day)
    assert sync.read_counters(ids, now=now) == before
    assert not reconcile.reconcile(dry_run=True).redis  # Redis as the log says

    again = _migrate()
    assert "0 day(s) in the v1 layout" in again and "moved 0 fields" in again
    assert _daily_keys() == after


def test_an_interrupted_move_resumes_without_counting_twice(world):
    now, items = world
    ids = [i.id for i in items]
    before = sync.read_counters(ids, now=now)
    client = inbo_redis.state()
    day = counters_migration.legacy_days(client)[0]
    first = client.hkeys(keys.item_daily_legacy(day))[0]
    # A run that died after one step: one field moved, the rest still in v1.
    assert counters_migration._move_chunk(client, day, [first], 0, 0) == 1
    assert counters_migration._move_chunk(client, day, [first], 0, 0) == 0  # never twice
    assert sync.read_counters(ids, now=now) == before
    _migrate()
    assert sync.read_counters(ids, now=now) == before


def test_the_move_waits_for_a_job_that_pauses_counting(world):
    client = inbo_redis.state()
    legacy = _daily_keys()
    client.set(keys.features_counting_paused(), "snapshot", ex=60)
    with pytest.raises(CommandError, match="stayed paused"):
        _migrate("--wait", "0")
    assert _daily_keys() == legacy  # nothing moved while a snapshot could be copying
    client.delete(keys.features_counting_paused())
    assert "moved 5 fields" in _migrate()


def test_a_snapshot_of_the_v1_layout_restores_and_migrates(world):
    now, items = world
    ids = [i.id for i in items]
    before = sync.read_counters(ids, now=now)
    snapshots.snapshot_take()
    inbo_redis.state().flushdb()
    snapshots.restore()
    assert sync.read_counters(ids, now=now) == before  # v1 days restored, still read
    assert not reconcile.reconcile(dry_run=True).redis  # Redis as the log says
    assert "moved 5 fields" in _migrate()
    assert sync.read_counters(ids, now=now) == before
    assert not reconcile.reconcile(dry_run=True).redis  # Redis as the log says
