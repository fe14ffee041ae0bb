"""Writes to the event log, and the ingestion path that keeps the counters in step."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import NoReturn

import redis
from celery import current_app
from django.db import connection, transaction
from django.db.utils import IntegrityError
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from features_app import counters, cut, partitions, pending
from features_app.contracts import EventIn, IngestResult, RecordResult
from features_app.models import PendingCount, UserEvent
from reading_app.public import ItemFacets, item_facets

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000

# The rows travel as one JSON document (one parameter): Django's psycopg cursors bind on the
# client side, where a list parameter is quoted element by element in Python (about 3 ms of
# this process's CPU for a client batch of 100, against 0.1 ms for one string). Each row
# carries its index ``n``, returned with the new event's id for the rows this call inserted
# (once per row inserted: should two rows of a batch share a key, the first one).
_INSERT = f"""
WITH batch AS (
    SELECT * FROM jsonb_to_recordset(%s::jsonb) AS r(
        n integer, user_id bigint, item_id bigint, event_type varchar, occurred_at timestamptz,
        event_id uuid, source varchar, context jsonb
    )
), inserted AS (
    INSERT INTO {UserEvent._meta.db_table}
        (user_id, item_id, event_type, occurred_at, received_at, event_id, source, context)
    SELECT user_id, item_id, event_type, occurred_at, %s, event_id, source, context FROM batch
    ON CONFLICT (event_id, user_id, occurred_at) DO NOTHING
    RETURNING event_id, user_id, occurred_at, id
)
SELECT DISTINCT ON (inserted.id) batch.n, inserted.id
FROM inserted JOIN batch USING (event_id, user_id, occurred_at)
ORDER BY inserted.id, batch.n
"""
_PENDING = (
    f"INSERT INTO {PendingCount._meta.db_table} (event_ids, created_at) "
    "VALUES (%s::bigint[], %s) RETURNING id"
)

# The partition job is asked for at most once per this many seconds per process: a burst
# of refused requests must not flood the queue.
_PARTITION_REQUEST_INTERVAL_SECONDS = 30.0
_partitions_requested_at: float | None = None


def _identity(event: EventIn) -> tuple:
    """An event's idempotency key: event ids are the client's, so unique per user only."""
    return (event.event_id, event.user_id, event.occurred_at)


def _request_partitions() -> None:
    """Queue the partition job (``send_task``: never run inline, even with eager tasks)."""
    global _partitions_requested_at
    now = time.monotonic()
    if (
        _partitions_requested_at is not None
        and now - _partitions_requested_at < _PARTITION_REQUEST_INTERVAL_SECONDS
    ):
        return
    # Counted as asked even if the broker is down: only one request per interval waits for
    # the broker's connection timeout.
    _partitions_requested_at = now
    try:
        current_app.send_task("inbo.features.ensure_partitions", retry=False)
    except (OSError, redis.RedisError, KombuOperationalError) as exc:
        # The job also runs nightly and at migrate; a later refused request asks again.
        logger.warning("features.partitions_request_failed error=%s", exc)
        return
    logger.warning("features.partitions_requested reason=client_month_missing")


def _refuse_missing(months: Iterable[date]) -> NoReturn:
    _request_partitions()
    raise partitions.PartitionMissing(months)


class StoredBatch(list[EventIn]):
    """The events one call stored, with the id of their ``PendingCount`` row (None when
    nothing was stored): pass it to :func:`events_count` as it is."""

    batch_id: int | None = None


def events_store(events: Sequence[EventIn], *, create_partitions: bool = True) -> StoredBatch:
    """Insert events, skipping stored ones; return exactly those this call inserted.

    In the same transaction (the caller's, or one of its own) the inserted events are
    recorded as one pending batch: until counted, they are never forgotten (ADR 0016).

    The log is partitioned by month. With ``create_partitions`` (loaders, replays) the
    months of the batch get their partitions first (no query when this process already
    knows them all, see ``partitions.ensure_for``). Without it (client events: a request
    must never create a partition nor lock the log exclusively) a month without partition
    raises ``PartitionMissing`` (a 503) after queueing the partition job; nothing is stored.
    """
    if connection.in_atomic_block:
        return _store(events, create_partitions)
    try:
        with transaction.atomic():
            return _store(events, create_partitions)
    except IntegrityError as exc:
        # Another process detached a month this one still remembered (``_store`` forgot
        # it): the transaction changed nothing, and the retry creates the partition.
        if not (create_partitions and partitions.is_missing_partition(exc)):
            raise
        with transaction.atomic():
            return _store(events, create_partitions)


def _store(events: Sequence[EventIn], create_partitions: bool) -> StoredBatch:
    unique: dict[tuple, EventIn] = {}
    for event in events:
        unique.setdefault(_identity(event), event)
    batch = list(unique.values())
    stored = StoredBatch()
    if not batch:
        return stored
    # Each distinct time once: a client's batch often shares one (the time it was received).
    moments = {e.occurred_at for e in batch}
    if create_partitions:
        partitions.ensure_for(moments)
    elif missing := partitions.missing_months(moments):
        _refuse_missing(missing)
    cut.take_shared_log_lock()
    now = timezone.now()
    event_ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(batch), BATCH_SIZE):
            chunk = batch[start : start + BATCH_SIZE]
            rows = json.dumps(
                [
                    {
                        "n": n,
                        "user_id": e.user_id,
                        "item_id": e.item_id,
                        "event_type": str(e.event_type),
                        "occurred_at": e.occurred_at.isoformat(),
                        "event_id": str(e.event_id),
                        "source": e.source,
                        "context": e.context,
                    }
                    for n, e in enumerate(chunk)
                ]
            )
            try:
                cursor.execute(_INSERT, [rows, now])
            except IntegrityError as exc:
                if partitions.is_missing_partition(exc):
                    partitions.forget()
                    if not create_partitions:
                        # No query here: the transaction is aborted.
                        _refuse_missing({partitions.month_start(e.occurred_at) for e in chunk})
                raise
            # In the batch's order, as a caller reads them.
            for n, pk in sorted(cursor.fetchall()):
                stored.append(chunk[n])
                event_ids.append(pk)
        if event_ids:
            cursor.execute(_PENDING, ["{" + ",".join(map(str, event_ids)) + "}", now])
            stored.batch_id = cursor.fetchone()[0]
    return stored


def events_record(events: Sequence[EventIn]) -> RecordResult:
    """Append ``events`` to the log; an event whose ``(event_id, user_id, occurred_at)`` is
    already stored is skipped, so a retried batch is never counted twice."""
    if not events:
        return RecordResult(created=0, duplicates=0)
    inserted = events_store(events)
    return RecordResult(created=len(inserted), duplicates=len(events) - len(inserted))


def events_count(
    events: Sequence[EventIn], *, facets: Mapping[int, ItemFacets] | None = None
) -> bool:
    """Count stored events in Redis, after their transaction committed. True only when
    they are counted now; else they stay pending and the pending sweep counts them.

    ``events`` is what :func:`events_store` returned (its batch is applied exactly once
    and its pending row dropped). Plain lists (bench tools that never stored them) are
    applied unconditionally. ``facets`` of the events' items may be passed by a caller
    that already has them.
    """
    if not events:
        return True
    if facets is None:
        facets = item_facets([e.item_id for e in events])
    batch_id = getattr(events, "batch_id", None)
    try:
        if batch_id is None:
            counters.apply_events(events, facets)
            return True
        outcome = counters.apply_batch(batch_id, events, facets)
    except redis.RedisError as exc:
        logger.warning("features.counters_unavailable events=%d error=%s", len(events), exc)
        pending.request_sweep()
        return False
    if outcome == counters.PAUSED:
        return False  # a job holds the counters still; the sweep counts them after it
    pending.forget(batch_id)
    return True


def events_ingest(events: Sequence[EventIn]) -> IngestResult:
    """Store events in PostgreSQL (the source of truth), then count the new ones in Redis.

    Only events this call inserted are counted, so a retried batch changes no counter.
    With Redis unreachable (or counting paused by a job) the events are still stored, and
    pending, and ``counted`` is False: the pending sweep counts them once.
    """
    if not events:
        return IngestResult(created=0, duplicates=0, counted=True)
    inserted = events_store(events)
    counted = events_count(inserted)
    return IngestResult(
        created=len(inserted), duplicates=len(events) - len(inserted), counted=counted
    )
