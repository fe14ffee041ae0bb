"""Writes to the event log."""

from __future__ import annotations

from collections.abc import Sequence

from features_app.contracts import EventIn, RecordResult
from features_app.models import UserEvent

BATCH_SIZE = 2000


def events_record(events: Sequence[EventIn]) -> RecordResult:
    """Append ``events`` to the log; an event whose ``(event_id, occurred_at)`` is already
    stored is skipped, so a retried batch is never counted twice."""
    if not events:
        return RecordResult(created=0, duplicates=0)
    # Dedupe inside the batch first: the same key twice in one batch is one event.
    unique: dict[tuple, EventIn] = {}
    for event in events:
        unique.setdefault((event.event_id, event.occurred_at), event)
    keys = list(unique)
    existing: set[tuple] = set()
    for start in range(0, len(keys), BATCH_SIZE):
        chunk = keys[start : start + BATCH_SIZE]
        existing.update(
            UserEvent.objects.filter(event_id__in=[k[0] for k in chunk]).values_list(
                "event_id", "occurred_at"
            )
        )
    new = [
        UserEvent(
            user_id=e.user_id,
            item_id=e.item_id,
            event_type=str(e.event_type),
            occurred_at=e.occurred_at,
            event_id=e.event_id,
            source=e.source,
            context=e.context,
        )
        for key, e in unique.items()
        if key not in existing
    ]
    # ignore_conflicts keeps a concurrent writer of the same batch from failing this one.
    UserEvent.objects.bulk_create(new, batch_size=BATCH_SIZE, ignore_conflicts=True)
    return RecordResult(created=len(new), duplicates=len(events) - len(new))
