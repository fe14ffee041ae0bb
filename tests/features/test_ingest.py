"""events_ingest: stored once in PostgreSQL, counted once in Redis, and never lost."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta, timezone

import pytest

from features_app import public as features
from features_app.contracts import EventType
from features_app.models import UserEvent
from tests.factories import ItemFactory, UserFactory
from tests.features.utils import HOUR, T0, event, impressions, state_snapshot

pytestmark = pytest.mark.django_db


def _mixed_batch():
    user = UserFactory()
    a, b = ItemFactory(), ItemFactory()
    batch = [
        *impressions(user, [a, b]),
        event(user, a, "impression", T0 + HOUR),
        event(user, a, "click", T0 + HOUR),
        event(user, a, "read", T0 + 2 * HOUR),
        event(user, a, "save", T0 + 2 * HOUR),
        event(user, b, "dismiss", T0 + HOUR),
        event(user, b, "hide", T0 + HOUR),
        event(user, a, "share", T0 + 3 * HOUR),
    ]
    return user, a, b, batch


def test_new_events_are_stored_and_counted():
    _, _, _, batch = _mixed_batch()
    result = features.events_ingest(batch)
    assert (result.created, result.duplicates, result.counted) == (len(batch), 0, True)
    assert features.event_count() == len(batch)
    stored = UserEvent.objects.get(event_id=batch[0].event_id)
    assert stored.event_type == "impression" and stored.occurred_at == T0


def test_lifetime_counts_per_type():
    user, a, b, batch = _mixed_batch()
    features.events_ingest(batch)
    signals = features.item_signals([a.id, b.id], now=T0 + 3 * HOUR)
    sa, sb = signals[a.id], signals[b.id]
    assert (sa.impressions, sa.clicks, sa.reads, sa.saves, sa.dismisses) == (2, 1, 1, 1, 0)
    assert (sb.impressions, sb.clicks, sb.reads, sb.saves, sb.dismisses) == (1, 0, 0, 0, 1)
    assert features.user_profile(user.id).event_counts == {
        "impression": 3,
        "click": 1,
        "read": 1,
        "save": 1,
        "share": 1,
        "dismiss": 1,
        "hide": 1,
    }


def test_same_batch_twice_changes_no_counter():
    _, _, _, batch = _mixed_batch()
    features.events_ingest(batch)
    before = state_snapshot()
    again = features.events_ingest(batch)
    assert (again.created, again.duplicates) == (0, len(batch))
    assert features.event_count() == len(batch)
    assert state_snapshot() == before


def test_duplicates_within_a_batch_are_counted_once():
    user, item = UserFactory(), ItemFactory()
    click = event(user, item, "click")
    impression = event(user, item, "impression")
    result = features.events_ingest([impression, click, impression, click, click])
    assert (result.created, result.duplicates, result.counted) == (2, 3, True)
    signals = features.item_signals([item.id], now=T0)[item.id]
    assert (signals.impressions, signals.clicks) == (1, 1)
    assert signals.decayed_clicks == pytest.approx(1.0)


def test_a_partly_new_batch_counts_only_the_new_events():
    user, item = UserFactory(), ItemFactory()
    first = [event(user, item, "click"), event(user, item, "click")]
    features.events_ingest(first)
    result = features.events_ingest([*first, event(user, item, "click", T0 + HOUR)])
    assert (result.created, result.duplicates) == (1, 2)
    assert features.item_signals([item.id], now=T0)[item.id].clicks == 3


def test_same_event_id_at_another_time_is_another_event():
    """Idempotency is ``(event_id, occurred_at)`` — the partitioned table's unique key."""
    user, item = UserFactory(), ItemFactory()
    shared = uuid.uuid4()
    result = features.events_ingest(
        [
            event(user, item, "click", T0, event_id=shared),
            event(user, item, "click", T0 + HOUR, event_id=shared),
        ]
    )
    assert result.created == 2


def test_stored_events_keep_their_exact_time_and_context_and_come_back_in_order():
    """The batch travels as one JSON document: text, offsets and microseconds survive it."""
    user, item = UserFactory(), ItemFactory()
    paris = timezone(timedelta(hours=1))
    context = {"note": 'quote " backslash \\ tab \t', "é": "ünïcode ✓", "nested": {"a": [1, 2.5]}}
    old = event(user, item, "click", T0 + timedelta(microseconds=1))
    features.events_store([old])
    batch = [
        event(user, item, "read", (T0 + HOUR + timedelta(microseconds=123_457)).astimezone(paris)),
        old,
        event(user, item, "save", T0 + 2 * HOUR, **context),
    ]
    stored = features.events_store(batch)
    assert stored == [batch[0], batch[2]]  # the new ones, in the batch's order
    rows = {e.event_id: e for e in UserEvent.objects.filter(user_id=user.id)}
    for e in batch:
        assert rows[e.event_id].occurred_at == e.occurred_at
        assert rows[e.event_id].context == e.context
    assert rows[batch[2].event_id].context == context


def test_two_events_of_a_batch_with_one_key_in_postgresql_are_stored_and_counted_once():
    """A naive time is UTC for PostgreSQL (the session's zone) but unequal to the aware one
    in Python: the batch keeps both, the table one, and one is counted."""
    user, item = UserFactory(), ItemFactory()
    shared = uuid.uuid4()
    aware = event(user, item, "click", T0, event_id=shared)
    naive = event(user, item, "click", T0.replace(tzinfo=None), event_id=shared)
    result = features.events_ingest([naive, aware])
    assert (result.created, result.duplicates) == (1, 1)
    assert UserEvent.objects.filter(user_id=user.id).count() == 1
    assert features.item_signals([item.id], now=T0)[item.id].clicks == 1


def test_empty_batch_does_nothing():
    result = features.events_ingest([])
    assert (result.created, result.duplicates, result.counted) == (0, 0, True)
    assert state_snapshot() == {}


def test_redis_down_events_are_stored_not_counted_and_counting_resumes(redis_state_server):
    user, item = UserFactory(), ItemFactory()
    features.events_ingest([event(user, item, "impression")])  # a pooled connection exists
    redis_state_server.stop()

    during = [event(user, item, "click", T0 + HOUR), event(user, item, "read", T0 + HOUR)]
    result = features.events_ingest(during)

    assert (result.created, result.duplicates, result.counted) == (2, 0, False)
    assert UserEvent.objects.filter(event_id__in=[e.event_id for e in during]).count() == 2

    redis_state_server.start()  # comes back empty, on the same port
    after = features.events_ingest([event(user, item, "click", T0 + 2 * HOUR)])
    assert (after.created, after.counted) == (1, True)
    assert features.item_signals([item.id], now=T0 + 2 * HOUR)[item.id].clicks == 1
    # A retry of the outage batch is a duplicate: the log has it, reconciliation counts it.
    retried = features.events_ingest(during)
    assert (retried.created, retried.duplicates) == (0, 2)


def test_redis_crash_mid_session_is_survived(redis_state_server):
    user, item = UserFactory(), ItemFactory()
    assert features.events_ingest([event(user, item, "impression")]).counted
    redis_state_server.kill()

    result = features.events_ingest([event(user, item, EventType.CLICK, T0 + HOUR)])

    assert (result.created, result.counted) == (1, False)
    assert features.event_count() == 2
    redis_state_server.start()
    assert features.events_ingest([event(user, item, "click", T0 + 2 * HOUR)]).counted


def test_redis_down_degrades_quickly(redis_state_server):
    """No retry loop between the caller and a refused connection: the feed must not wait."""
    user, item = UserFactory(), ItemFactory()
    redis_state_server.stop()
    started = time.monotonic()
    assert not features.events_ingest([event(user, item, "click")]).counted
    assert time.monotonic() - started < 1.5
