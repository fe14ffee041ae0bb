"""Recording client interactions: the real-time feedback loop.

A batch is stored in PostgreSQL in one transaction — each interaction as an
``ExperienceInteraction`` and as a ``UserEvent`` (the source of truth, with its pending
batch, ADR 0016) — and its side effects (counting in Redis, dropping the user's cached
feed, so the very next home call reflects it) run through ``transaction.on_commit``: only
once that transaction commits, never for a batch that rolls back. Called outside any
transaction (a request), the batch commits inside the call and the response says whether
it was counted; called inside a caller's transaction, the effects wait for the caller's
commit, so ``counted`` is False (stored and pending: counted at that commit, or by the
pending sweep). Client ``event_id``s make retries safe: a retried batch stores and counts
nothing twice. They are unique per user only: another user's id is just an id (it neither
drops this user's event nor tells them it exists).

Client events never create a partition of the event log: ``occurred_at`` is bounded to the
months kept ready (the serializer), and a month still without one is a 503
(``features_app.partitions.PartitionMissing``) with nothing stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db import connection, transaction

from experience_app.models import ExperienceInteraction
from experience_app.services import feed
from experience_app.services.reader_context import ReaderContext, reader_context
from experience_app.time_place import Place
from features_app import public as features
from features_app.contracts import EventIn, EventType
from reading_app import public as reading
from reading_app.public import ItemFacets


@dataclass(frozen=True, slots=True)
class InteractionIn:
    event_id: UUID
    item_id: int
    interaction_type: str
    occurred_at: datetime
    request_id: UUID | None = None
    section: str = ""
    position: int | None = None
    dwell_ms: int | None = None
    # The client's reading session id ("" : none, the server's 30-minute gap decides).
    session_id: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    event_id: UUID
    reason: str


@dataclass(frozen=True, slots=True)
class BatchResult:
    accepted: int
    duplicates: int
    rejected: list[Rejected]
    counted: bool


# The rows travel as one JSON document (one parameter, see features_app.services: list
# parameters are quoted element by element in Python); the index ``n`` of each row this call
# inserted comes back.
_INSERT = f"""
WITH batch AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r(
        n integer, item_id bigint, interaction_type varchar, section varchar, position integer,
        request_id uuid, event_id uuid, occurred_at timestamptz, dwell_ms integer
    )
), inserted AS (
    INSERT INTO {ExperienceInteraction._meta.db_table}
        (user_id, item_id, interaction_type, section, position, request_id, event_id,
         occurred_at, received_at, dwell_ms)
    SELECT %s, item_id, interaction_type, section, position, request_id, event_id,
        occurred_at, %s, dwell_ms
    FROM batch
    ON CONFLICT (event_id, user_id) DO NOTHING
    RETURNING event_id
)
SELECT batch.n FROM inserted JOIN batch USING (event_id)
"""


def _insert(user_id: int, rows: list[InteractionIn], received_at: datetime) -> list[InteractionIn]:
    """Insert ``rows`` (event ids unique), skipping stored ones; those inserted, in order."""
    batch = json.dumps(
        [
            {
                "n": n,
                "item_id": r.item_id,
                "interaction_type": r.interaction_type,
                "section": r.section,
                "position": r.position,
                "request_id": None if r.request_id is None else str(r.request_id),
                "event_id": str(r.event_id),
                "occurred_at": r.occurred_at.isoformat(),
                "dwell_ms": r.dwell_ms,
            }
            for n, r in enumerate(rows)
        ]
    )
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, [batch, user_id, received_at])
        return [rows[n] for (n,) in sorted(cursor.fetchall())]


def interactions_record(
    *,
    user_id: int,
    interactions: list[InteractionIn],
    now: datetime,
    place: Place | None = None,
) -> BatchResult:
    """Store a batch of interactions and feed them back into counters and the feed.

    An interaction with an unknown or unavailable item is rejected alone (reported with its
    index); the rest of the batch is accepted. Each event carries the reader's local hour
    of week and place (``place``: a trusted proxy's, when the profile has none) for the
    time and place counters (issue 13).
    """
    facets = reading.item_facets([i.item_id for i in interactions])
    rejected: list[Rejected] = []
    valid: list[InteractionIn] = []
    seen_ids: set[UUID] = set()  # one user's batch: the event id alone is the key
    for index, interaction in enumerate(interactions):
        facet = facets.get(interaction.item_id)
        if facet is None or not facet.available:
            rejected.append(Rejected(index, interaction.event_id, "unknown_item"))
        elif interaction.event_id in seen_ids:
            continue  # the same event twice in one batch is one event
        else:
            seen_ids.add(interaction.event_id)
            valid.append(interaction)
    if not valid:
        return BatchResult(0, len(interactions) - len(rejected), rejected, counted=True)

    effects = _BatchEffects(user_id, facets)
    reader = reader_context(user_id, proxy_place=place)
    with transaction.atomic():
        new = _insert(user_id, valid, now)
        stored = features.events_store(
            [_event(user_id, i, reader) for i in new], create_partitions=False
        )
        effects.stored = stored
        effects.changed = bool(new)
        # Counters and cache only ever reflect what PostgreSQL holds: after commit.
        transaction.on_commit(effects.apply)
    return BatchResult(
        accepted=len(new),
        duplicates=len(interactions) - len(rejected) - len(new),
        rejected=rejected,
        # None: the caller's transaction has not committed yet (the effects wait for it).
        counted=bool(effects.counted),
    )


def _event(user_id: int, i: InteractionIn, reader: ReaderContext) -> EventIn:
    """The event an interaction stores: its context without the empty fields, stamped."""
    context: dict[str, object] = {}
    if i.request_id:
        context["request_id"] = str(i.request_id)
    if i.section:
        context["section"] = i.section
    if i.position is not None:
        context["position"] = i.position
    if i.dwell_ms is not None:
        context["dwell_ms"] = i.dwell_ms
    if i.session_id:
        context["session"] = i.session_id
    context.update(reader.stamp(i.occurred_at))
    return EventIn(
        user_id=user_id,
        item_id=i.item_id,
        event_type=EventType(i.interaction_type),
        occurred_at=i.occurred_at,
        event_id=i.event_id,
        source="app",
        context=context,
    )


class _BatchEffects:
    """What a stored batch changes outside PostgreSQL, run once its transaction commits."""

    def __init__(self, user_id: int, facets: Mapping[int, ItemFacets]) -> None:
        self.user_id = user_id
        self.facets = facets
        self.stored: Sequence[EventIn] = []
        self.changed = False
        self.counted: bool | None = None

    def apply(self) -> None:
        self.counted = features.events_count(self.stored, facets=self.facets)
        if self.changed:
            feed.invalidate(self.user_id)
