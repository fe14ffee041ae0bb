"""Builders and probes shared by the feature-store tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from features_app.contracts import EventIn, EventType
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
