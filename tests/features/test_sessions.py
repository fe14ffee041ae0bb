"""Real-time reading sessions in Redis and session-kNN (``features_app.sessions``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from features_app import sessions
from features_app.contracts import EventIn, EventType
from inbo import keys
from inbo import redis as inbo_redis

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def event(user: int, item: int, at: datetime, kind: str = "click", **context) -> EventIn:
    return EventIn(
        user_id=user,
        item_id=item,
        event_type=EventType(kind),
        occurred_at=at,
        event_id=uuid.uuid4(),
        context=context,
    )


def apply(*events: EventIn, batch_id: int | None = None, now: datetime | None = None) -> None:
    last = max(e.occurred_at for e in events)
    sessions.apply(events, now=(now or last).timestamp(), batch_id=batch_id)


def stored_sessions() -> dict[str, list[int]]:
    raw = inbo_redis.state().hgetall(keys.session_items())
    return {sid: [int(x) for x in items.split(",")] for sid, items in raw.items()}


def test_events_within_the_gap_are_one_session_and_a_30_minute_gap_starts_another():
    apply(event(1, 10, T0), event(1, 11, T0 + 10 * MINUTE), event(1, 12, T0 + 29 * MINUTE))
    apply(event(1, 13, T0 + 60 * MINUTE))  # 31 minutes after the last engagement

    assert sorted(stored_sessions().values()) == [[10, 11, 12], [13]]
    current = sessions.current_session(1, now=T0 + 61 * MINUTE)
    assert current is not None and current.items == (13,)


def test_a_session_is_over_once_the_gap_has_passed_without_an_engagement():
    apply(event(1, 10, T0))

    assert sessions.current_session(1, now=T0 + 30 * MINUTE) is not None
    assert sessions.current_session(1, now=T0 + 31 * MINUTE) is None


def test_client_session_ids_group_events_whatever_the_time_between_them():
    apply(
        event(1, 10, T0, session="tab-a"),
        event(1, 20, T0 + MINUTE, session="tab-b"),
        event(1, 11, T0 + 2 * MINUTE, session="tab-a"),
        event(1, 12, T0 + 50 * MINUTE, session="tab-a"),
    )

    assert stored_sessions() == {"1:c:tab-a": [10, 11, 12], "1:c:tab-b": [20]}
    # Another user's session with the same client id is another session.
    apply(event(2, 30, T0, session="tab-a"))
    assert stored_sessions()["2:c:tab-a"] == [30]


def test_only_engagements_make_a_session_and_repeats_collapse():
    apply(
        event(1, 10, T0, "impression"),
        event(1, 11, T0 + MINUTE),
        event(1, 11, T0 + 2 * MINUTE, "read"),
        event(1, 12, T0 + 3 * MINUTE, "dismiss"),
        event(1, 13, T0 + 4 * MINUTE, "save"),
    )

    assert list(stored_sessions().values()) == [[11, 13]]


def test_a_batch_counted_again_is_not_appended_twice():
    batch = [event(1, 10, T0), event(1, 11, T0 + MINUTE)]
    apply(*batch, batch_id=7)
    apply(event(1, 12, T0 + 2 * MINUTE), batch_id=8)
    apply(*batch, batch_id=7)  # the pending sweep counts batch 7 again

    assert list(stored_sessions().values()) == [[10, 11, 12]]


def test_an_event_older_than_the_current_session_leaves_it_alone():
    apply(event(1, 10, T0 + 2 * timedelta(hours=1)))
    apply(event(1, 99, T0))  # a late batch: two hours before the current session

    assert list(stored_sessions().values()) == [[10]]


def test_knn_recommends_what_neighbour_sessions_read_next():
    for user, items in {2: [1, 2, 3], 3: [1, 2, 4], 4: [1, 5], 5: [6, 7]}.items():
        apply(*(event(user, item, T0 + n * MINUTE) for n, item in enumerate(items)))
    apply(event(1, 1, T0 + 10 * MINUTE), event(1, 2, T0 + 11 * MINUTE))

    current = sessions.current_session(1, now=T0 + 12 * MINUTE)
    assert current is not None and current.items == (1, 2)
    ranked = sessions.next_reads(current, limit=10)

    # V-SKNN: sessions 2 and 3 share both items (similarity 0.5 + 1), session 4 only the
    # first (0.5); the session's own items and the unrelated session's never come back.
    assert ranked == [(3, 1.0), (4, 1.0), (5, 0.3333)]


def test_knn_scores_is_the_offline_algorithm():
    candidates = {1: frozenset("ab"), 2: frozenset("abc"), 3: frozenset("cd")}

    cosine = sessions.knn_scores(["a", "b"], candidates, decay=False)
    assert cosine == pytest.approx({"a": 1 + 2 / 6**0.5, "b": 1 + 2 / 6**0.5, "c": 2 / 6**0.5})
    # Only the k most similar vote; equally similar sessions: the greater key wins.
    assert sessions.knn_scores(["a"], {1: {"a", "x"}, 2: {"a", "y"}}, k=1) == {
        "a": 1.0,
        "y": 1.0,
    }


def test_memory_stays_bounded(monkeypatch):
    monkeypatch.setattr(keys, "SESSION_MAX_ITEMS", 3)
    monkeypatch.setattr(keys, "SESSION_ITEM_MAX_SESSIONS", 2)
    monkeypatch.setattr(keys, "SESSION_INDEX_MAX_SESSIONS", 4)
    apply(*(event(1, item, T0 + item * MINUTE) for item in range(1, 6)))  # five items
    for user in range(2, 8):  # six more sessions, all with item 1
        apply(event(user, 1, T0 + (10 + user) * MINUTE), event(user, 50, T0 + 30 * MINUTE))
    client = inbo_redis.state()

    def sid(user: int) -> str:
        return f"{user}:g:{int((T0 + (10 + user) * MINUTE).timestamp())}"

    assert set(stored_sessions()) == {sid(user) for user in (4, 5, 6, 7)}  # the most recent
    assert client.zcard(keys.session_recent()) == 4
    assert client.zrevrange(keys.item_sessions(1), 0, -1) == [sid(7), sid(6)]
    assert client.zrange(keys.item_sessions(50), 0, -1) == [sid(6), sid(7)]
    # An evicted session leaves every item list it was in.
    assert not client.exists(keys.item_sessions(5))
    assert 0 < client.ttl(keys.item_sessions(1)) <= keys.SESSION_INDEX_TTL_SECONDS
    assert 0 < client.ttl(keys.session_current(7)) <= 2 * sessions.gap_seconds()


def test_sessions_idle_longer_than_the_retention_leave_the_index():
    apply(event(1, 10, T0))
    later = T0 + timedelta(seconds=keys.SESSION_INDEX_TTL_SECONDS + 60)
    apply(event(2, 11, later))

    assert list(stored_sessions()) == [f"2:g:{int(later.timestamp())}"]
    assert not inbo_redis.state().exists(keys.item_sessions(10))


def test_the_timing_command_measures_in_a_scratch_database_only(redis_server, capsys):
    from django.conf import settings
    from django.core.management import CommandError, call_command

    scratch = redis_server.url(3)
    call_command(
        "session_timing",
        "--sessions",
        "40",
        "--items",
        "15",
        "--trials",
        "3",
        "--redis-url",
        scratch,
    )

    out = capsys.readouterr().out
    assert "40 sessions written" in out and "session of 10 item(s)" in out
    assert inbo_redis.state().dbsize() == 0  # nothing reached the application's state
    with pytest.raises(CommandError, match="REDIS_STATE_URL"):
        call_command("session_timing", "--redis-url", settings.REDIS_STATE_URL)
