"""The features_app facade: the only module other apps import from here."""

from __future__ import annotations

from collections.abc import Sequence

from features_app import services
from features_app.contracts import EventIn, EventType, RecordResult
from features_app.models import UserEvent

__all__ = ["EventIn", "EventType", "RecordResult", "event_count", "events_record"]


def events_record(events: Sequence[EventIn]) -> RecordResult:
    """Append events to the log idempotently (see :func:`features_app.services.events_record`)."""
    return services.events_record(events)


def event_count(*, source: str | None = None) -> int:
    """How many events the log holds (of one source, if given)."""
    qs = UserEvent.objects.all()
    if source is not None:
        qs = qs.filter(source=source)
    return qs.count()
