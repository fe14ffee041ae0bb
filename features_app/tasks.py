"""Feature-store jobs. Each is idempotent (absolute writes or recomputed differences), so
a worker killed mid-run leaves the message to be redelivered (``acks_late``) and the rerun
reaches the same result."""

from __future__ import annotations

import logging

import redis
from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from features_app import embedding_jobs, partitions, pending, retention, segments, snapshots, sync
from features_app import reconcile as reconciliation
from features_app.jobs import JobBusy

logger = logging.getLogger(__name__)

_COMMON = {
    "ignore_result": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": (redis.ConnectionError, redis.TimeoutError),
    "retry_backoff": True,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(name="inbo.features.sync", soft_time_limit=240, time_limit=300, **_COMMON)
def sync_features() -> int:
    """Copy validated counters of changed items from Redis to ItemFeature."""
    try:
        return sync.sync_features(batch_size=settings.FEATURES_SYNC_BATCH_SIZE).synced
    except JobBusy:
        logger.info("features.sync_skipped reason=busy")
        return 0


@shared_task(name="inbo.features.reconcile", soft_time_limit=1500, time_limit=1700, **_COMMON)
def reconcile_features() -> float:
    """Recount from the event log and repair drift in Redis and ItemFeature."""
    try:
        return reconciliation.reconcile().total_drift
    except JobBusy:
        logger.info("features.reconcile_skipped reason=busy")
        return 0


@shared_task(name="inbo.features.snapshot", soft_time_limit=1500, time_limit=1700, **_COMMON)
def snapshot_counters() -> int | None:
    """Back up every counter key to PostgreSQL."""
    try:
        return snapshots.snapshot_take().pk
    except JobBusy:
        logger.info("features.snapshot_skipped reason=busy")
        return None


@shared_task(name="inbo.features.count_pending", soft_time_limit=240, time_limit=300, **_COMMON)
def count_pending() -> int:
    """Count the stored batches Redis has not counted yet (exactly once); first rebuild the
    counters if Redis came back empty (ADR 0016). Beat runs it every 15 s; ingestion queues
    it after a failure."""
    try:
        return pending.sweep().events
    except JobBusy:
        logger.info("features.count_pending_skipped reason=busy")
        return 0


@shared_task(
    name="inbo.features.ensure_partitions",
    soft_time_limit=120,
    time_limit=180,
    ignore_result=True,
    acks_late=True,  # idempotent: existing partitions are left as they are
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
)
def ensure_partitions(months_ahead: int = 3) -> int:
    """Create the event log's partitions from the oldest month a client may report
    (``EVENTS_CLIENT_MAX_AGE_DAYS`` ago) to ``months_ahead`` months ahead. Also queued by a
    request whose events' month has no partition yet (a fresh deployment)."""
    created = partitions.ensure_ahead(months_ahead)
    logger.info("features.partitions_ensured ahead=%d created=%d", months_ahead, len(created))
    return len(created)


@shared_task(name="inbo.features.retention", soft_time_limit=3300, time_limit=3500, **_COMMON)
def apply_retention() -> int:
    """Delete the logs' rows past their windows, detach old event-log months with their
    baselines (``features_app.retention``, daily). Returns the rows removed (0: skipped,
    another run holds the lock)."""
    try:
        return retention.run().rows
    except JobBusy:
        logger.info("features.retention_skipped reason=busy")
        return 0


@shared_task(name="inbo.features.embed_items", soft_time_limit=240, time_limit=300, **_COMMON)
def embed_items(item_ids: list[int]) -> int:
    """Embed changed catalog items (queued by the catalog listener once the change commits)
    and write their nearest neighbours. Idempotent: unchanged text is not recomputed."""
    return embedding_jobs.embed_and_link(item_ids).embedded


@shared_task(
    name="inbo.features.refresh_user_embeddings",
    soft_time_limit=240,
    time_limit=300,
    ignore_result=True,
    acks_late=True,  # idempotent: the watermark moves only after everything is written
    reject_on_worker_lost=True,
)
def refresh_user_embeddings() -> int:
    """Users with new events: their embedding and "similar" candidates again (beat, every
    minute). Skips (logged) when another run holds the lock or Redis is away."""
    return embedding_jobs.refresh_user_embeddings().users


@shared_task(
    name="inbo.features.compute_segments", soft_time_limit=1500, time_limit=1700, **_COMMON
)
def compute_segments() -> int:
    """Every active user's engagement segment and interest cluster, and the day's sizes
    (beat, hourly; ``features_app.segments``). Returns the users segmented (0: skipped,
    another run holds the lock)."""
    try:
        return segments.compute_segments().users
    except JobBusy:
        logger.info("features.segments_skipped reason=busy")
        return 0
