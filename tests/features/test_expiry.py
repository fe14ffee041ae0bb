"""Idle counters expire: day buckets after the last window that reads them, a user's keys
after their latest event; reconcile and restore set the same expiry and never bring back
what Redis rightly let go."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from features_app import counters, reconcile, snapshots
from features_app import public as features
from inbo import keys
from inbo import redis as inbo_redis
from tests.factories import ItemFactory, UserFactory
from tests.features.utils import event, mark_counters_complete

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
USER_KEYS = (keys.user_counts, keys.user_affinity)


def _expiry(now, offset: timedelta) -> int:
    return int((now + offset).timestamp())


def test_an_idle_user_keys_go_and_come_back_whole_when_they_return():
    now = timezone.now().replace(microsecond=0)
    idle, active, item = UserFactory(), UserFactory(), ItemFactory()
    features.events_ingest(
        [
            event(idle, item, "impression", now - 40 * DAY),
            event(idle, item, "click", now - 40 * DAY),
            event(active, item, "click", now - DAY),
        ]
    )
    mark_counters_complete()
    client = inbo_redis.state()
    # Counted late (a replay, an offline client): kept only for the grace period.
    assert 0 < client.ttl(keys.user_counts(idle.id)) <= keys.EXPIRED_WRITE_GRACE_SECONDS
    idle_for = counters.user_idle_seconds()
    for key in (f(active.id) for f in USER_KEYS):
        assert client.expiretime(key) == _expiry(now - DAY, timedelta(seconds=idle_for)), key
    client.delete(*(f(idle.id) for f in USER_KEYS))  # as Redis expires them

    reconcile.reconcile()
    assert not any(client.exists(f(idle.id)) for f in USER_KEYS)  # not brought back
    assert not reconcile.reconcile(dry_run=True).redis

    features.events_ingest([event(idle, item, "read", now)])  # they return
    assert client.hgetall(keys.user_counts(idle.id)) == {"read": "1"}
    reconcile.reconcile()
    # Recounted from the log, whole, and expiring after their latest event.
    assert client.hgetall(keys.user_counts(idle.id)) == {
        "impression": "1",
        "click": "1",
        "read": "1",
    }
    expected = _expiry(now, timedelta(seconds=idle_for))
    assert abs(client.expiretime(keys.user_counts(idle.id)) - expected) <= 5


def test_restore_and_reconcile_give_day_buckets_the_writer_s_expiry():
    now = timezone.now()
    user, item = UserFactory(), ItemFactory()
    features.events_ingest(
        [event(user, item, "impression", now - 3 * DAY), event(user, item, "click", now)]
    )
    mark_counters_complete()
    client = inbo_redis.state()
    today = int(now.timestamp() // 86400)
    buckets = {keys.item_daily(day, item.id): day for day in (today - 3, today)}
    written = {key: client.expiretime(key) for key in buckets}
    assert written == {key: keys.item_daily_expires_at(day) for key, day in buckets.items()}

    client.flushdb()
    snapshots.restore()  # no snapshot: every event counted again
    assert {key: client.expiretime(key) for key in buckets} == written

    old = keys.item_daily(today - 3, item.id)
    client.delete(old)
    reconcile.reconcile()
    assert client.hgetall(old) == {f"{item.id}:impression": "1"}
    assert abs(client.expiretime(old) - written[old]) <= 5
    # Lifetime counts never expire (PostgreSQL's log is their source; reconcile recounts).
    assert client.ttl(keys.item_counts(item.id)) == -1
