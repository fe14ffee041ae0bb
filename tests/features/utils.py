"""Builders and probes shared by the feature-store tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from features_app.contracts import EventIn, EventType
from inbo import keys
from inbo import redis as inbo_redis

T0 = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def event(
    user: Any,
    item: Any,
    kind: EventType | str,
    at: datetime = T0,
    *,
    event_id: uuid.UUID | None = None,
    **context: Any,
) -> EventIn:
    """One event; ``context`` becomes the event's context (``request_id=...`` for a list)."""
    return EventIn(
        user_id=user.id,
        item_id=item.id,
        event_type=EventType(kind),
        occurred_at=at,
        event_id=event_id or uuid.uuid4(),
        context=context,
    )


def impressions(user: Any, items: list[Any], at: datetime = T0, **context: Any) -> list[EventIn]:
    return [event(user, item, EventType.IMPRESSION, at, **context) for item in items]


def state_snapshot() -> dict[str, object]:
    """Every key of the state database with its value (TTLs left out: they tick)."""
    client = inbo_redis.state()
    readers = {
        "hash": client.hgetall,
        "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        "string": client.get,
        "set": client.smembers,
        "list": lambda key: client.lrange(key, 0, -1),
    }
    return {key: readers[client.type(key)](key) for key in sorted(client.scan_iter())}


def feature_store_state(*, drop_zeros: bool = False, digits: int = 9) -> dict[str, object]:
    """Every feature-store key with its value, minus locks and job bookkeeping.

    Hashes as dicts, sorted sets as ``{member: score to digits significant digits}`` (a
    replay may add the same floats in another order; decayed scores reach 1e60), sets as
    sets. ``drop_zeros`` leaves out hash fields that are ``0``: a repair by difference
    leaves them behind, a clean count never writes them.
    """
    client = inbo_redis.state()
    state: dict[str, object] = {}
    for key in sorted(client.scan_iter(match=keys.features_pattern())):
        if key.split(":")[2] in keys.FEATURES_SNAPSHOT_EXCLUDED_THINGS:
            continue
        kind = client.type(key)
        value: object
        if kind == "hash":
            value = {
                f: v for f, v in client.hgetall(key).items() if not (drop_zeros and float(v) == 0)
            }
        elif kind == "zset":
            value = {
                m: float(f"{s:.{digits}g}") for m, s in client.zrange(key, 0, -1, withscores=True)
            }
        elif kind == "set":
            value = client.smembers(key)
        else:
            raise AssertionError(f"unexpected {kind} at {key}")
        if value or not drop_zeros:
            state[key] = value
    return state


def mark_counters_complete() -> None:
    """What a restore writes last: without it the pending sweep rebuilds the counters
    first (it takes a flushed test database for a Redis that came back empty)."""
    inbo_redis.state().set(keys.features_sentinel(), "1")


def counter_state(digits: int = 9) -> dict[str, dict[str, float]]:
    """Every counter key (the families of ``cut.FAMILIES``) with its fields as numbers
    rounded to ``digits`` significant digits (sums added in another order), zeros left
    out: what "every counter key equals a full rebuild" compares."""
    from features_app import cut

    client = inbo_redis.state()
    state: dict[str, dict[str, float]] = {}
    for key, values in cut.read_redis(client).items():
        kept = {f: float(f"{float(v):.{digits}g}") for f, v in values.items() if float(v) != 0}
        if kept:
            state[key] = kept
    return state
