"""Backups of the Redis counters in PostgreSQL, and restore from them (ADR 0016).

A snapshot pauses counting, reads the cut its copy reflects (``cut.read``: the log's
watermark and the events still pending then) and copies every feature-store key with
``DUMP`` (exact, compact, any type). A restore pauses counting, deletes every counter key,
loads the latest complete snapshot with ``RESTORE`` and counts exactly the events outside
its cut, up to a watermark of its own, batch by batch as ingestion counted them. The
pending batches it covered are marked applied and dropped; the ones stored during the
restore stay pending and the sweep counts them after it. So ingestion may run throughout,
and a second restore counts nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings

from features_app import baseline, counters, cut, forgetting, jobs
from features_app.contracts import counters_recovered
from features_app.jobs import JobBusy
from features_app.models import CounterSnapshot, CounterSnapshotKey, PendingCount
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.public import item_facets

logger = logging.getLogger(__name__)

DUMP_BATCH = 500
REPLAY_BATCH = cut.REPLAY_BATCH
KEEP_SNAPSHOTS = 3


def _is_counter_key(key: str) -> bool:
    thing = key.split(":")[2] if key.count(":") >= 4 else ""
    return thing not in keys.FEATURES_SNAPSHOT_EXCLUDED_THINGS


def snapshot_take() -> CounterSnapshot:
    """Copy every counter key, with the cut it reflects, into a new snapshot; older ones
    beyond the last 3 are deleted. Counting is paused meanwhile (batches stay pending)."""
    client = inbo_redis.state()
    raw_client = inbo_redis.state_raw()
    with jobs.run(
        "snapshot", ttl_seconds=settings.FEATURES_JOB_LOCK_SECONDS, pause_counting=True
    ) as job:
        at = cut.read(client)
        snapshot = CounterSnapshot.objects.create(
            last_event_id=at.watermark, unapplied_event_ids=sorted(at.unapplied)
        )
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
            job.renew()
        snapshot.key_count = len(names)
        snapshot.size_bytes = size
        snapshot.complete = True
        snapshot.save(update_fields=["key_count", "size_bytes", "complete"])
        stale = CounterSnapshot.objects.order_by("-created_at", "-id").values_list("id", flat=True)[
            KEEP_SNAPSHOTS:
        ]
        CounterSnapshot.objects.filter(id__in=list(stale)).delete()
        job.status.update(snapshot=snapshot.pk, keys=len(names), watermark=at.watermark)
    logger.info(
        "features.snapshot_taken id=%s keys=%d bytes=%d watermark=%d unapplied=%d",
        snapshot.pk,
        snapshot.key_count,
        size,
        at.watermark,
        len(at.unapplied),
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
    """Rebuild the counters: latest complete snapshot, then every event outside its cut.

    Without a snapshot, every event in the log is counted again (a full rebuild). Every
    counter key is deleted first, so what Redis held (nothing after a loss; what ingestion
    counted since Redis came back) is never counted twice. Counting is paused throughout:
    ingestion goes on storing, its batches stay pending, and the sweep counts them after.
    Raises JobBusy while another job pauses counting (e.g. a snapshot being taken).
    """
    started = time.monotonic()
    client = inbo_redis.state()
    raw_client = inbo_redis.state_raw()
    with jobs.run(
        "restore", ttl_seconds=settings.FEATURES_JOB_LOCK_SECONDS, pause_counting=True
    ) as job:
        # Gone until the end: a run killed halfway is taken up again by the sweep.
        client.delete(keys.features_sentinel())
        snapshot = (
            CounterSnapshot.objects.filter(complete=True).order_by("-created_at", "-id").first()
        )
        _delete_counter_keys(client)
        # Detached months count through their baselines (ADR 0026): those the snapshot does
        # not hold are added before the replay; a month partly in its cut leaves the
        # snapshot aside (a full rebuild: baselines, then the whole log).
        months = None
        if snapshot is not None:
            _, months, straddling = baseline.covered_by(
                snapshot.last_event_id, snapshot.unapplied_event_ids
            )
            if straddling:
                logger.warning(
                    "features.restore_full_rebuild snapshot=%s detached=%s",
                    snapshot.pk,
                    ",".join(m.table for m in straddling),
                )
                snapshot = None
        restored = 0
        after, unapplied = 0, []
        if snapshot is not None:
            after, unapplied = snapshot.last_event_id, snapshot.unapplied_event_ids
            rows = CounterSnapshotKey.objects.filter(snapshot=snapshot).values_list(
                "key", "payload", "ttl_ms"
            )
            pipe = raw_client.pipeline(transaction=False)
            for key, payload, ttl in rows.iterator(chunk_size=DUMP_BATCH):
                pipe.restore(key, ttl, bytes(payload), replace=True)
                restored += 1
                if restored % DUMP_BATCH == 0:
                    pipe.execute()
                    job.renew()
            pipe.execute()
        if months is None or months:
            baseline.apply_all(client, baseline.ops(forget=forgetting.rules(), months=months))
        upto = cut.watermark()
        replayed = _replay(after, upto, unapplied, progress, job)
        # Every batch up to the watermark is now counted: mark it so (a late command of an
        # earlier attempt is then a no-op) and drop its row.
        covered = [
            batch_id
            for batch_id, event_ids in PendingCount.objects.values_list("id", "event_ids")
            if max(event_ids, default=0) <= upto
        ]
        if covered:
            now = f"{time.time():.3f}"
            client.zadd(keys.features_applied_batches(), {str(b): now for b in covered})
            PendingCount.objects.filter(id__in=covered).delete()
        client.set(keys.features_sentinel(), f"{time.time():.3f}")
        job.status.update(snapshot=snapshot.pk if snapshot else 0, events=replayed, watermark=upto)
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


def recover() -> RestoreReport | None:
    """Restore after Redis came back empty (no sentinel), timed as a metric; None when a
    restore or another pausing job is already running (it will be checked again)."""
    try:
        report = restore()
    except JobBusy:
        return None
    counters_recovered.send(recover, seconds=report.seconds, events=report.events_replayed)
    logger.warning(
        "features.recovered_empty_redis seconds=%.3f events=%d",
        report.seconds,
        report.events_replayed,
    )
    return report


def _replay(
    after: int,
    upto: int,
    unapplied: list[int],
    progress: Callable[[int], None] | None,
    job: jobs.Job,
) -> int:
    """Count the events outside the snapshot's cut (``after < id <= upto`` and its
    unapplied ids), as ingestion counted them (``cut.stored_batches``)."""
    replayed = 0
    client = inbo_redis.state()
    # What readers asked to forget stays forgotten when the log is counted again. (Keys
    # restored from a snapshot taken before a removal hold it until the next reconcile.)
    forget = forgetting.rules()
    chunks = cut.stored_chunks(after=after, upto=upto, also=unapplied, chunk=REPLAY_BATCH)
    for batches in chunks:
        facets = item_facets(list({e.item_id for batch in batches for e in batch}))
        pipe = client.pipeline(transaction=False)
        for events in batches:
            counters.apply_events(events, facets, pipe=pipe, forget=forget)
        pipe.execute()
        size = sum(len(batch) for batch in batches)
        replayed += size
        if progress:
            progress(size)
        job.renew()
    return replayed
