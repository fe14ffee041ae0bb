"""Stored batches not yet counted: applied exactly once when Redis answers (ADR 0016).

Every stored batch has a ``PendingCount`` row, written with its events. Ingestion applies
the batch right after the commit and drops the row; when Redis is down, slow, or a job
pauses counting, the row stays and :func:`sweep` (beat, every few seconds, and queued by
ingestion after a failure) applies it later. The counting script records each batch's id
with the counters, so a batch whose answer was lost (a timeout after Redis did the work)
is recognised and not counted again. The markers are kept an hour, far longer than a
command can wait in a hung server's buffer.

Before anything else the sweep checks the sentinel key: when Redis came back empty, it
rebuilds the counters (latest snapshot plus replay, see ``snapshots.restore``) first.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import redis
from celery import current_app
from django.conf import settings
from django.db import connection
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from features_app import counters, jobs
from features_app.contracts import EventIn, EventType
from features_app.models import PendingCount, UserEvent
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.public import item_facets

logger = logging.getLogger(__name__)

APPLIED_RETENTION_SECONDS = 3600
SWEEP_BATCHES = 500
_REQUEST_INTERVAL_SECONDS = 10.0
_requested_at: float | None = None
_FORGET = f"DELETE FROM {PendingCount._meta.db_table} WHERE id = %s"


def forget(batch_id: int) -> None:
    """The batch is counted: its row goes (its applied marker stays for the retention)."""
    # Plain SQL: the ORM's delete (a collector for one row) cost ingestion 0.7 ms a batch.
    with connection.cursor() as cursor:
        cursor.execute(_FORGET, [batch_id])


def request_sweep() -> None:
    """Queue a sweep, never waiting for the broker (at most once per interval per process;
    beat runs one every 15 s anyway)."""
    global _requested_at
    now = time.monotonic()
    if _requested_at is not None and now - _requested_at < _REQUEST_INTERVAL_SECONDS:
        return
    _requested_at = now
    # In the background: the broker often lives on the Redis that just failed, and a hung
    # one would hold the request that asks (beat runs the sweep anyway).
    threading.Thread(target=_send_sweep, name="features-sweep-request", daemon=True).start()


def _send_sweep() -> None:
    try:
        current_app.send_task(
            "inbo.features.count_pending",
            countdown=settings.FEATURES_PENDING_MIN_AGE_SECONDS,
            retry=False,
        )
    except (OSError, redis.RedisError, KombuOperationalError) as exc:
        logger.warning("features.sweep_request_failed error=%s", exc)


def batch_events(event_ids: list[int]) -> list[EventIn]:
    rows = UserEvent.objects.filter(id__in=event_ids).order_by("id")
    return [
        EventIn(
            user_id=e.user_id,
            item_id=e.item_id,
            event_type=EventType(e.event_type),
            occurred_at=e.occurred_at,
            event_id=e.event_id,
            source=e.source,
            context=e.context,
        )
        for e in rows
    ]


@dataclass
class SweepReport:
    applied: int = 0
    already: int = 0
    events: int = 0
    remaining: int = 0
    paused: bool = False
    restored: bool = False
    recovery_seconds: float | None = None


def sweep(*, min_age_seconds: float | None = None, limit: int = SWEEP_BATCHES) -> SweepReport:
    """Rebuild the counters if Redis came back empty, then apply pending batches older
    than ``min_age_seconds`` (older than any attempt ingestion may still be making).
    Raises JobBusy while another sweep runs; stops early while counting is paused."""
    from features_app import snapshots  # snapshots imports this module's callers

    report = SweepReport()
    client = inbo_redis.state()
    if not client.exists(keys.features_sentinel()):
        restored = snapshots.recover()
        report.restored = restored is not None
        report.recovery_seconds = restored.seconds if restored else None
    age = settings.FEATURES_PENDING_MIN_AGE_SECONDS if min_age_seconds is None else min_age_seconds
    with jobs.run("count_pending", ttl_seconds=300) as job:
        client.zremrangebyscore(
            keys.features_applied_batches(), "-inf", time.time() - APPLIED_RETENTION_SECONDS
        )
        cutoff = timezone.now() - timedelta(seconds=age)
        rows = list(
            PendingCount.objects.filter(created_at__lte=cutoff)
            .order_by("id")
            .values_list("id", "event_ids")[:limit]
        )
        for batch_id, event_ids in rows:
            events = batch_events(event_ids)
            facets = item_facets(list({e.item_id for e in events}))
            outcome = counters.apply_batch(batch_id, events, facets, client=client)
            if outcome == counters.PAUSED:
                report.paused = True
                break
            if outcome == counters.APPLIED:
                report.applied += 1
                report.events += len(events)
            else:
                report.already += 1
            forget(batch_id)
            job.renew()
        report.remaining = PendingCount.objects.count()
        job.status.update(applied=report.applied, events=report.events, remaining=report.remaining)
    if report.applied or report.already:
        logger.info(
            "features.pending_counted batches=%d events=%d already=%d remaining=%d",
            report.applied,
            report.events,
            report.already,
            report.remaining,
        )
    return report
