"""Bulk, idempotent creation of users' reading state: subscriptions, saves, progress.

For imports and demo data. A row is keyed by ``(user, provider)`` or ``(user, item)``;
one that exists is left exactly as it is, so running an import twice creates nothing.
Timestamps given in the input backdate the new rows: ``auto_now``/``auto_now_add``
fields ignore values passed to ``bulk_create``, so they are set in a second bulk step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from inbo.errors import InvalidInput
from reading_app.contracts import BulkCreateResult, ReadingProgressIn, SavedItemIn, SubscriptionIn
from reading_app.models import ReadingProgress, SavedItem, Subscription

BATCH_SIZE = 1000

Pair = tuple[int, int]


def _chunks(values: Sequence[Any], size: int = BATCH_SIZE) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _ids_by_pair(model: type[models.Model], other: str, pairs: Iterable[Pair]) -> dict[Pair, int]:
    """Primary keys of the stored rows among ``pairs`` (``(user_id, <other>_id)``)."""
    wanted = set(pairs)
    found: dict[Pair, int] = {}
    for users in _chunks(sorted({user_id for user_id, _ in wanted})):
        rows = model._default_manager.filter(user_id__in=users).values_list(
            "user_id", f"{other}_id", "id"
        )
        found.update(((u, o), pk) for u, o, pk in rows if (u, o) in wanted)
    return found


def _create_missing(
    model: type[models.Model],
    other: str,
    rows: Mapping[Pair, models.Model],
    timestamps: Mapping[Pair, dict[str, datetime]],
) -> BulkCreateResult:
    """Insert the rows whose pair is not stored yet, then set their timestamp fields."""
    existing = _ids_by_pair(model, other, rows)
    new = {pair: row for pair, row in rows.items() if pair not in existing}
    # ignore_conflicts: a concurrent writer of the same pair wins instead of failing us.
    model._default_manager.bulk_create(new.values(), batch_size=BATCH_SIZE, ignore_conflicts=True)
    ids = _ids_by_pair(model, other, new)
    fields = sorted({name for pair in new for name in timestamps.get(pair, {})})
    if fields:
        stamped = [model(pk=ids[pair], **timestamps[pair]) for pair in new if pair in ids]
        model._default_manager.bulk_update(stamped, fields, batch_size=BATCH_SIZE)
    return BulkCreateResult(created=len(new), existing=len(existing))


@transaction.atomic
def subscriptions_create(subscriptions: Sequence[SubscriptionIn]) -> BulkCreateResult:
    """Create the subscriptions a user does not have yet (first of duplicates wins)."""
    statuses = set(Subscription.Status.values)
    if bad := sorted({s.status for s in subscriptions} - statuses):
        raise InvalidInput("Unknown subscription status.", details={"status": bad})
    now = timezone.now()
    rows: dict[Pair, models.Model] = {}
    stamps: dict[Pair, dict[str, datetime]] = {}
    for s in subscriptions:
        pair = (s.user_id, s.provider_id)
        if pair in rows:
            continue
        rows[pair] = Subscription(user_id=s.user_id, provider_id=s.provider_id, status=s.status)
        created = s.created_at or now
        stamps[pair] = {"created_at": created, "updated_at": created}
    return _create_missing(Subscription, "provider", rows, stamps)


@transaction.atomic
def saved_items_create(saved: Sequence[SavedItemIn]) -> BulkCreateResult:
    """Create the saved items a user does not have yet (first of duplicates wins)."""
    now = timezone.now()
    rows: dict[Pair, models.Model] = {}
    stamps: dict[Pair, dict[str, datetime]] = {}
    for s in saved:
        pair = (s.user_id, s.item_id)
        if pair in rows:
            continue
        rows[pair] = SavedItem(user_id=s.user_id, item_id=s.item_id)
        stamps[pair] = {"created_at": s.created_at or now}
    return _create_missing(SavedItem, "item", rows, stamps)


@transaction.atomic
def reading_progress_create(progress: Sequence[ReadingProgressIn]) -> BulkCreateResult:
    """Create reading progress where a user has none for the item (first of duplicates wins)."""
    if bad := [p for p in progress if not 0.0 <= p.progress <= 1.0 or p.position < 0]:
        raise InvalidInput(
            "Progress must be between 0 and 1 and position not negative.",
            details={"rows": [(p.user_id, p.item_id) for p in bad[:10]]},
        )
    now = timezone.now()
    rows: dict[Pair, models.Model] = {}
    stamps: dict[Pair, dict[str, datetime]] = {}
    for p in progress:
        pair = (p.user_id, p.item_id)
        if pair in rows:
            continue
        rows[pair] = ReadingProgress(
            user_id=p.user_id,
            item_id=p.item_id,
            progress=p.progress,
            position=p.position,
            completed_at=p.completed_at,
        )
        started = p.started_at or now
        stamps[pair] = {"started_at": started, "updated_at": p.updated_at or started}
    return _create_missing(ReadingProgress, "item", rows, stamps)
