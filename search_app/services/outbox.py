"""The indexing outbox: changes recorded with the catalog's transaction, claimed in batches,
finished or retried with exponential backoff, dead-lettered after bounded tries."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, Min, OuterRef
from django.utils import timezone

from reading_app.contracts import CatalogKind
from search_app.models import SearchOutbox

TABLE = SearchOutbox._meta.db_table
# A claim older than this belongs to a worker that died (tasks stop after 6 minutes).
CLAIM_TIMEOUT = timedelta(minutes=15)
BACKOFF_CAP_SECONDS = 3600.0
ERROR_CHARS = 2000

_ENQUEUE = f"""
INSERT INTO {TABLE} (doc_type, object_id, op, status, attempts, next_attempt_at,
                     created_at, changed_at, last_error, task_ref)
SELECT %s, id, %s, 'pending', 0, now(), now(), now(), '', ''
FROM unnest(%s::bigint[]) AS id
ON CONFLICT (doc_type, object_id) WHERE status IN ('pending', 'failed')
DO UPDATE SET op = EXCLUDED.op, changed_at = EXCLUDED.changed_at, task_ref = ''
"""
# Due live rows, oldest first, skipping rows another transaction holds and documents whose
# previous change is still being written (a later write must not be overtaken).
_CLAIM = f"""
UPDATE {TABLE} SET status = 'in_flight', claimed_at = clock_timestamp()
WHERE id IN (
    SELECT c.id FROM {TABLE} c
    WHERE c.status IN ('pending', 'failed') AND c.next_attempt_at <= clock_timestamp()
      AND NOT EXISTS (
          SELECT 1 FROM {TABLE} f WHERE f.status = 'in_flight'
          AND f.doc_type = c.doc_type AND f.object_id = c.object_id)
    ORDER BY c.next_attempt_at, c.id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, doc_type, object_id, op, attempts, task_ref
"""


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row taken by this indexing run."""

    id: int
    doc_type: CatalogKind
    object_id: int
    op: str
    attempts: int
    task_ref: str


def enqueue(doc_type: str, ids: Sequence[int], op: str) -> None:
    """Record that documents changed (the catalog listener; runs in the change's
    transaction). A document that already waits keeps one row: its op is updated."""
    if ids:
        with connection.cursor() as cursor:
            cursor.execute(_ENQUEUE, [CatalogKind(doc_type).value, op, sorted(set(ids))])


def claim(limit: int) -> list[Claimed]:
    """Mark up to ``limit`` due rows in flight and return them (committed at once)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM, [limit])
        rows = cursor.fetchall()
    return [
        Claimed(pk, CatalogKind(doc_type), object_id, op, attempts, task_ref)
        for pk, doc_type, object_id, op, attempts, task_ref in rows
    ]


def finish(ids: Sequence[int]) -> None:
    """The rows' changes reached every index: forget them."""
    if ids:
        SearchOutbox.objects.filter(id__in=list(ids), status=SearchOutbox.Status.IN_FLIGHT).delete()


def backoff_seconds(attempts: int) -> float:
    """Delay before try ``attempts + 1``: base x 2^(attempts-1), capped, half of it jitter."""
    delay = min(BACKOFF_CAP_SECONDS, settings.SEARCH_INDEX_BACKOFF_SECONDS * 2 ** (attempts - 1))
    return delay / 2 + random.uniform(0, delay / 2)


def fail(rows: Sequence[Claimed], error: str, *, task_ref: str = "") -> int:
    """Count a failed try: retry later with backoff, or dead-letter after the last try.
    Returns how many rows died. A row whose document changed again meanwhile gives way to
    the newer row, which carries the retry."""
    if not rows:
        return 0
    now = timezone.now()
    max_attempts = settings.SEARCH_INDEX_MAX_ATTEMPTS
    with transaction.atomic():
        stored = {
            r.id: r
            for r in SearchOutbox.objects.select_for_update().filter(
                id__in=[c.id for c in rows], status=SearchOutbox.Status.IN_FLIGHT
            )
        }
        newer = _with_newer_rows(list(stored))
        dead = 0
        updated = []
        for pk, row in stored.items():
            attempts = row.attempts + 1
            row.attempts = attempts
            row.last_error = error[:ERROR_CHARS]
            row.task_ref = task_ref[:500]
            row.claimed_at = None
            if attempts >= max_attempts:
                row.status = SearchOutbox.Status.DEAD
                row.next_attempt_at = now
                dead += 1
            elif pk in newer:
                continue
            else:
                row.status = SearchOutbox.Status.FAILED
                row.next_attempt_at = now + timedelta(seconds=backoff_seconds(attempts))
            updated.append(row)
        SearchOutbox.objects.filter(id__in=newer - {r.id for r in updated}).delete()
        try:
            with transaction.atomic():
                SearchOutbox.objects.bulk_update(updated, _FAIL_FIELDS)
        except IntegrityError:
            # A change committed meanwhile made a new live row for one of these documents:
            # row by row, and the one that collides gives way to the newer row.
            for row in updated:
                try:
                    with transaction.atomic():
                        row.save(update_fields=_FAIL_FIELDS)
                except IntegrityError:
                    SearchOutbox.objects.filter(id=row.id).delete()
    return dead


_FAIL_FIELDS = ["attempts", "last_error", "task_ref", "claimed_at", "status", "next_attempt_at"]


def _with_newer_rows(ids: list[int]) -> set[int]:
    """Ids among ``ids`` whose document has a live (pending or failed) row too."""
    live = SearchOutbox.objects.filter(
        doc_type=OuterRef("doc_type"),
        object_id=OuterRef("object_id"),
        status__in=SearchOutbox.LIVE,
    )
    return set(
        SearchOutbox.objects.filter(id__in=ids).filter(Exists(live)).values_list("id", flat=True)
    )


def stale_claims(now: datetime | None = None) -> list[Claimed]:
    """In-flight rows whose claim expired: the worker that took them died."""
    cutoff = (now or timezone.now()) - CLAIM_TIMEOUT
    rows = SearchOutbox.objects.filter(
        status=SearchOutbox.Status.IN_FLIGHT, claimed_at__lt=cutoff
    ).values_list("id", "doc_type", "object_id", "op", "attempts", "task_ref")
    return [Claimed(pk, CatalogKind(t), o, op, a, ref) for pk, t, o, op, a, ref in rows]


def retry(ids: Sequence[int]) -> int:
    """Give dead (or failed) rows a fresh set of tries, due now (the admin's "retry").
    A row whose document has a newer live row is dropped: that row covers it."""
    with transaction.atomic():
        rows = list(
            SearchOutbox.objects.select_for_update().filter(
                id__in=list(ids),
                status__in=[SearchOutbox.Status.DEAD, SearchOutbox.Status.FAILED],
            )
        )
        dead_ids = [r.id for r in rows if r.status == SearchOutbox.Status.DEAD]
        covered = _with_newer_rows(dead_ids)
        SearchOutbox.objects.filter(id__in=covered).delete()
        retried = [r.id for r in rows if r.id not in covered]
        SearchOutbox.objects.filter(id__in=retried).update(
            status=SearchOutbox.Status.PENDING,
            attempts=0,
            next_attempt_at=timezone.now(),
            task_ref="",
        )
    return len(retried)


def stats(now: datetime | None = None) -> dict:
    """Rows by status and the age in seconds of the oldest change not yet indexed."""
    now = now or timezone.now()
    counts = dict(
        SearchOutbox.objects.values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    oldest = SearchOutbox.objects.exclude(status=SearchOutbox.Status.DEAD).aggregate(
        oldest=Min("created_at")
    )["oldest"]
    return {
        "by_status": {s.value: int(counts.get(s.value, 0)) for s in SearchOutbox.Status},
        "oldest_pending_age_seconds": (now - oldest).total_seconds() if oldest else None,
    }
