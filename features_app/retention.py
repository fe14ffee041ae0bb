"""The retention job: every log keeps its window and no more (ADR 0026, docs/OPERATIONS.md
"Retention").

One run, under the lock-and-status pattern of every feature-store job (``jobs.run``):

* each log declared by an app (``inbo.retention.logs``: the served log, interactions, the
  search log, exposures, decisions, bandit snapshots) loses its rows dated before its
  window, or before what a running experiment still reads, in bounded batches;
* the event log detaches its months older than ``RETENTION_EVENT_LOG_MONTHS`` (never one a
  running experiment reads), each with its baseline (``partitions.detach_partitions``), and
  drops detached tables when ``RETENTION_EVENT_LOG_DROP_DETACHED`` says so.

The status hash keeps, per log, the date of its oldest row left and the window it kept
(seconds): monitoring turns them into the oldest row's age at scrape time, so an alert sees
a log growing past its window when the job stops running.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from features_app import jobs, partitions
from features_app.contracts import retention_purged
from features_app.models import DetachedMonth
from inbo import keys, retention
from inbo import redis as inbo_redis

logger = logging.getLogger(__name__)

EVENT_LOG = "event_log"
JOB = "retention"


@dataclass
class LogReport:
    """One log's outcome: rows deleted (``dry_run``: that would be), its cutoff, whether a
    hold moved it, and the date of its oldest row left."""

    name: str
    cutoff: datetime
    held: bool
    rows: int
    oldest: datetime | None
    detached: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


@dataclass
class RetentionReport:
    dry_run: bool
    logs: list[LogReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(log.rows for log in self.logs)


def names() -> list[str]:
    """Every log the job keeps in its window."""
    return [log.name for log in retention.logs()] + [EVENT_LOG]


def _progress_of(
    progress: Callable[[str, int], None] | None, name: str
) -> Callable[[int], None] | None:
    """``progress`` bound to one log's name (None: no progress output)."""
    if progress is None:
        return None
    return lambda n: progress(name, n)


def run(
    *,
    dry_run: bool = False,
    now: datetime | None = None,
    only: Collection[str] | None = None,
    batch_size: int | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> RetentionReport:
    """Delete (``dry_run``: count) what is past every window; JobBusy if a run is going on."""
    now = now or timezone.now()
    size = batch_size or settings.RETENTION_BATCH_SIZE
    started = time.monotonic()
    report = RetentionReport(dry_run=dry_run)
    with jobs.run(JOB, ttl_seconds=settings.FEATURES_JOB_LOCK_SECONDS) as job:
        for log in retention.logs():
            if only is not None and log.name not in only:
                continue
            at, held = retention.cutoff(log, now=now)
            if dry_run:
                rows = retention.due(log, at=at)
            else:
                rows = retention.purge(
                    log,
                    at=at,
                    batch_size=size,
                    pause=settings.RETENTION_BATCH_PAUSE_SECONDS,
                    progress=_progress_of(progress, log.name),
                    renew=job.renew,
                )
            oldest = retention.oldest(log, at=at)
            report.logs.append(LogReport(log.name, at, held, rows, oldest))
            if rows and not dry_run:
                retention_purged.send(run, log=log.name, rows=rows)
            job.renew()
        if (only is None or EVENT_LOG in only) and settings.RETENTION_EVENT_LOG_MONTHS:
            report.logs.append(_event_log(now, dry_run))
        for done in report.logs:
            job.status[f"oldest:{done.name}"] = (
                f"{done.oldest.timestamp():.0f}" if done.oldest else ""
            )
            job.status[f"window:{done.name}"] = f"{(now - done.cutoff).total_seconds():.0f}"
            job.status[f"rows:{done.name}"] = done.rows
        job.status["dry_run"] = int(dry_run)
    report.seconds = round(time.monotonic() - started, 3)
    logger.info(
        "features.retention dry_run=%s rows=%d seconds=%.3f %s",
        dry_run,
        report.rows,
        report.seconds,
        " ".join(f"{log.name}={log.rows}" for log in report.logs),
    )
    return report


def event_log_cutoff(now: datetime) -> tuple[date, bool]:
    """The first month the event log keeps, and whether a running experiment moved it."""
    keep_from = partitions.add_months(
        partitions.month_start(now), -settings.RETENTION_EVENT_LOG_MONTHS
    )
    held = retention.held_since(EVENT_LOG)
    if held is not None and partitions.month_start(held) < keep_from:
        return partitions.month_start(held), True
    return keep_from, False


def _event_log(now: datetime, dry_run: bool) -> LogReport:
    keep_from, held = event_log_cutoff(now)
    cutoff = datetime(keep_from.year, keep_from.month, 1, tzinfo=UTC)
    old = [p for p in partitions.list_partitions() if p.attached and p.month < keep_from]
    report = LogReport(EVENT_LOG, cutoff, held, 0, None)
    if dry_run:
        report.rows = sum(partitions.count_rows(p.name) for p in old)
        report.detached = [p.name for p in old]
    elif old:
        try:
            done = partitions.detach_partitions(keep_from, today=now.date())
        except (partitions.PartitionError, jobs.JobBusy) as exc:
            # Events still pending, or another job pausing counting: the next run detaches.
            logger.warning("features.retention_partial log=%s reason=%s", EVENT_LOG, exc)
            done = []
        report.detached = [new for _, new in done]
        report.rows = sum(
            DetachedMonth.objects.filter(table__in=report.detached).values_list("rows", flat=True)
        )
    if settings.RETENTION_EVENT_LOG_DROP_DETACHED:
        report.dropped = drop_detached(dry_run=dry_run)
    report.oldest = _oldest_event_month()
    return report


def drop_detached(*, dry_run: bool = False) -> list[str]:
    """Drop the detached tables of the event log whose baseline is stored (their counts
    live on in it; the events themselves are gone: dump them first to keep an archive)."""
    kept = {p.name for p in partitions.list_partitions() if not p.attached}
    names_ = sorted(DetachedMonth.objects.filter(table__in=kept).values_list("table", flat=True))
    if dry_run or not names_:
        return names_
    with transaction.atomic(), connection.cursor() as cursor:
        partitions._lock(cursor)
        for name in names_:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")
    logger.info("features.detached_dropped names=%s", ",".join(names_))
    return names_


def _oldest_event_month() -> datetime | None:
    """The start of the oldest attached month that holds an event (one probe per month)."""
    with connection.cursor() as cursor:
        for p in partitions.list_partitions():
            if not p.attached:
                continue
            cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {p.name})")
            if cursor.fetchone()[0]:
                return datetime(p.month.year, p.month.month, 1, tzinfo=UTC)
    return None


def figures(*, now: float | None = None) -> dict[str, dict[str, float]]:
    """Per log, from the last run's status: the age of its oldest row now (0: empty) and the
    window it kept, both in seconds. Empty before the first run."""
    status: dict[str, str] = inbo_redis.state().hgetall(keys.features_job_status(JOB))  # type: ignore[assignment]
    now = time.time() if now is None else now
    out: dict[str, dict[str, float]] = {}
    for name, value in status.items():
        if not name.startswith("window:"):
            continue
        log = name.split(":", 1)[1]
        oldest = status.get(f"oldest:{log}") or ""
        out[log] = {
            "window_seconds": float(value),
            "oldest_age_seconds": max(0.0, now - float(oldest)) if oldest else 0.0,
        }
    return out
