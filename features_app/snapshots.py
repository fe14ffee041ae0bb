"""Backups of the Redis counters in PostgreSQL, and restore from them.

A snapshot copies every feature-store key with ``DUMP`` (exact, compact, any type) and
remembers the newest event counted when it began. A restore deletes every counter key,
loads the latest complete snapshot with ``RESTORE`` and then counts the events stored
after it, batch by batch as ingestion counted them, so counters come back whole after
Redis loses its data — and a second restore, or one after ingestion resumed on an empty
Redis, counts nothing twice.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import redis
from django.db import transaction
from django.db.models import Max

from features_app import counters
from features_app.contracts import EventIn, EventType
from features_app.models import CounterSnapshot, CounterSnapshotKey, UserEvent
from features_app.sync import JobBusy
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.public import item_facets

logger = logging.getLogger(__name__)

DUMP_BATCH = 500
REPLAY_BATCH = 5000
KEEP_SNAPSHOTS = 3


def _is_counter_key(key: str) -> bool:
    thing = key.split(":")[2] if key.count(":") >= 4 else ""
    return thing not in keys.FEATURES_SNAPSHOT_EXCLUDED_THINGS


def snapshot_take() -> CounterSnapshot:
    """Copy every counter key into a new snapshot; older ones beyond the last 3 are deleted."""
    client = inbo_redis.state()
    raw_client = inbo_redis.state_raw()
    lock = client.lock(keys.features_lock("snapshot"), timeout=1800, blocking=False)
    if not lock.acquire(blocking=False):
        raise JobBusy("snapshot")
    try:
        last_event_id = UserEvent.objects.aggregate(m=Max("id"))["m"] or 0
        snapshot = CounterSnapshot.objects.create(last_event_id=last_event_id)
        names = [
            k
            for k in client.scan_iter(match=keys.features_pattern(), count=1000)
            if _is_counter_key(k)
        ]
        size = 0
        for start in range(0, len(names), DUMP_BATCH):
            chunk = names[start : start + DUMP_BATCH]
            pipe = raw_client.pipeline(transaction=False)
            for name in chunk:
                pipe.dump(name)
                pipe.pttl(name)
            replies = pipe.execute()
            rows = []
            for i, name in enumerate(chunk):
                payload, ttl = replies[2 * i], replies[2 * i + 1]
                if payload is None:
                    continue  # expired between SCAN and DUMP
                size += len(payload)
                rows.append(
                    CounterSnapshotKey(
                        snapshot=snapshot, key=name, payload=payload, ttl_ms=max(ttl, 0)
                    )
                )
            CounterSnapshotKey.objects.bulk_create(rows)
        snapshot.key_count = len(names)
        snapshot.size_bytes = size
        snapshot.complete = True
        snapshot.save(update_fields=["key_count", "size_bytes", "complete"])
        stale = CounterSnapshot.objects.order_by("-created_at", "-id").values_list("id", flat=True)[
            KEEP_SNAPSHOTS:
        ]
        CounterSnapshot.objects.filter(id__in=list(stale)).delete()
    finally:
        lock.release()
    logger.info(
        "features.snapshot_taken id=%s keys=%d bytes=%d", snapshot.pk, snapshot.key_count, size
    )
    return snapshot


@dataclass
class RestoreReport:
    snapshot_id: int | None
    keys_restored: int
    events_replayed: int
    seconds: float


def _delete_counter_keys(client: redis.Redis) -> int:
    names = [
        k for k in client.scan_iter(match=keys.features_pattern(), count=1000) if _is_counter_key(k)
    ]
    for start in range(0, len(names), DUMP_BATCH):
        client.unlink(*names[start : start + DUMP_BATCH])
    return len(names)


def restore(*, progress: Callable[[int], None] | None = None) -> RestoreReport:
    """Rebuild the counters: latest complete snapshot, then every event after it.

    Without a snapshot, every event in the log is counted again (a full rebuild). Every
    counter key is deleted first, so what Redis held (nothing after a loss; what ingestion
    counted since Redis came back) is never counted twice. An event ingestion counts while
    a restore runs may be counted twice: restore on a quiet system.
    Raises JobBusy while a snapshot is being taken (it would copy a half-restored state).
    """
    started = time.monotonic()
    client = inbo_redis.state()
    raw_client = inbo_redis.state_raw()
    lock = client.lock(keys.features_lock("snapshot"), timeout=1800, blocking=False)
    if not lock.acquire(blocking=False):
        raise JobBusy("snapshot")
    try:
        snapshot = (
            CounterSnapshot.objects.filter(complete=True).order_by("-created_at", "-id").first()
        )
        _delete_counter_keys(client)
        restored = 0
        after = 0
        if snapshot is not None:
            after = snapshot.last_event_id
            rows = CounterSnapshotKey.objects.filter(snapshot=snapshot).values_list(
                "key", "payload", "ttl_ms"
            )
            pipe = raw_client.pipeline(transaction=False)
            for key, payload, ttl in rows.iterator(chunk_size=DUMP_BATCH):
                pipe.restore(key, ttl, bytes(payload), replace=True)
                restored += 1
                if restored % DUMP_BATCH == 0:
                    pipe.execute()
            pipe.execute()
        replayed = _replay_after(after, progress)
    finally:
        with contextlib.suppress(redis.exceptions.LockNotOwnedError):
            lock.release()
    report = RestoreReport(
        snapshot.pk if snapshot else None, restored, replayed, round(time.monotonic() - started, 3)
    )
    logger.info(
        "features.restored snapshot=%s keys=%d events=%d seconds=%.3f",
        report.snapshot_id,
        restored,
        replayed,
        report.seconds,
    )
    return report


def _replay_after(last_event_id: int, progress: Callable[[int], None] | None) -> int:
    """Count every event with an id above ``last_event_id`` as ingestion counted it.

    Ingestion counts the events one call stored as one batch, and a batch's lists' click
    rates and seen-without-click memory depend on what it holds. The events of one call
    share ``received_at``, so each such group is applied as its own batch, in the order it
    was stored (many groups per pipeline). A chunk ends before the group it would cut,
    unless that group alone fills the chunk.
    """
    replayed = 0
    cursor = last_event_id
    client = inbo_redis.state()
    while True:
        with transaction.atomic():
            rows = list(
                UserEvent.objects.filter(id__gt=cursor)
                .order_by("id")
                .values_list(
                    "id",
                    "user_id",
                    "item_id",
                    "event_type",
                    "occurred_at",
                    "event_id",
                    "source",
                    "context",
                    "received_at",
                )[:REPLAY_BATCH]
            )
        if not rows:
            return replayed
        if len(rows) == REPLAY_BATCH:
            tail = rows[-1][-1]
            cut = next(i for i, row in enumerate(rows) if row[-1] == tail)
            if cut:
                rows = rows[:cut]  # the tail group comes whole with the next chunk
        groups: dict[datetime, list[EventIn]] = {}
        for _, user_id, item_id, event_type, occurred_at, event_id, source, context, at in rows:
            groups.setdefault(at, []).append(
                EventIn(
                    user_id=user_id,
                    item_id=item_id,
                    event_type=EventType(event_type),
                    occurred_at=occurred_at,
                    event_id=event_id,
                    source=source,
                    context=context,
                )
            )
        facets = item_facets(list({row[2] for row in rows}))
        pipe = client.pipeline(transaction=False)
        for events in groups.values():
            counters.apply_events(events, facets, pipe=pipe)
        pipe.execute()
        cursor = rows[-1][0]
        replayed += len(rows)
        if progress:
            progress(len(rows))
