"""The features_app facade: the only module other apps import from here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from features_app import counters, fallback, services
from features_app.contracts import (
    EventIn,
    EventType,
    IngestResult,
    ItemSignals,
    RecordResult,
    UserProfile,
)
from features_app.models import UserEvent

__all__ = [
    "EventIn",
    "EventType",
    "IngestResult",
    "ItemSignals",
    "RecordResult",
    "UserProfile",
    "event_count",
    "events_ingest",
    "events_record",
    "item_signals",
    "item_signals_from_log",
    "trending",
    "trending_from_log",
    "user_profile",
    "user_profile_from_log",
]


def events_record(events: Sequence[EventIn]) -> RecordResult:
    """Append events to the log idempotently (see :func:`features_app.services.events_record`)."""
    return services.events_record(events)


def event_count(*, source: str | None = None) -> int:
    """How many events the log holds (of one source, if given)."""
    qs = UserEvent.objects.all()
    if source is not None:
        qs = qs.filter(source=source)
    return qs.count()


def events_ingest(events: Sequence[EventIn]) -> IngestResult:
    """Store events (idempotently) and count the new ones in Redis in one round trip."""
    return services.events_ingest(events)


def item_signals(item_ids: Sequence[int], *, now: datetime) -> dict[int, ItemSignals]:
    """Popularity signals of items at ``now``. Raises ``redis.RedisError`` when Redis is
    unreachable; see :func:`item_signals_from_log` for the degraded path."""
    return counters.item_signals(item_ids, now=now)


def user_profile(user_id: int) -> UserProfile:
    """A user's affinities and seen-without-click memory. Raises ``redis.RedisError``."""
    return counters.user_profile(user_id)


def trending(*, now: datetime, limit: int) -> list[tuple[int, float]]:
    """Item ids by time-decayed clicks at ``now``. Raises ``redis.RedisError``."""
    return counters.trending(now=now, limit=limit)


def item_signals_from_log(item_ids: Sequence[int], *, now: datetime) -> dict[int, ItemSignals]:
    """Degraded path: item signals computed from the event log in PostgreSQL."""
    return fallback.item_signals_from_log(item_ids, now=now)


def user_profile_from_log(user_id: int, *, now: datetime) -> UserProfile:
    """Degraded path: a user's profile rebuilt from their recent events in PostgreSQL."""
    return fallback.user_profile_from_log(user_id, now=now)


def trending_from_log(*, now: datetime, limit: int) -> list[tuple[int, float]]:
    """Degraded path: decayed clicks of the last 48 hours from PostgreSQL."""
    return fallback.trending_from_log(now=now, limit=limit)
