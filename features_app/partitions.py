"""Monthly partitions of the event log.

``UserEvent`` is partitioned by RANGE (``occurred_at``), one partition per UTC month, named
``features_app_userevent_pYYYY_MM`` (the year zero-padded to four digits) and bounded
``[first of the month, first of the next)`` (the convention of migration 0003). This module
creates them ahead of time (beat task ``inbo.features.ensure_partitions`` and ``migrate``,
from the oldest month a client may still report, ``EVENTS_CLIENT_MAX_AGE_DAYS`` ago, to
three months ahead), on demand when loaders and replays store events of a new month
(``ensure_for``: MIND data is from 2019, a backfill may bring any month), lists them, and
detaches old ones.

Client events never create a partition (``missing_months``): creating one takes the lock
described below, so a client that could choose the month could stop ingestion for
everyone, and fill the catalog with empty tables until every job that locks the whole log
runs out of lock slots (``max_locks_per_transaction``).

There is deliberately no DEFAULT partition. Rows in a default partition that belong to a
month make ``CREATE TABLE … PARTITION OF`` for that month fail (PostgreSQL refuses to create
a partition whose range the default partition already holds rows for), so one stray event
would block the month's partition until someone moved the rows by hand; and every new
partition would have to scan the default partition under lock. Creating the month's
partition before inserting is cheap and keeps every row in its month.

Creating a partition takes an ACCESS EXCLUSIVE lock on the parent table until the creating
transaction ends: queries of the event log wait meanwhile. It happens once per month ahead
of time, so only backfills of months nobody created yet pay it. ``missing_months`` only reads
the catalog (``pg_inherits``), which takes no lock on the event log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.utils import IntegrityError
from django.utils import timezone

from features_app import baseline, forgetting, jobs
from features_app.models import PendingCount, UserEvent
from inbo.errors import ServiceUnavailable

logger = logging.getLogger(__name__)

PARENT = UserEvent._meta.db_table
PARTITION_PREFIX = f"{PARENT}_p"
# A detached partition is renamed so that its month's name is free for a new partition.
DETACHED_PREFIX = f"{PARENT}_d"
_MONTH = re.compile(r"(\d{4})_(\d{2})(?:_\d+)?$")
_TABLE_NAME = re.compile(rf"^{PARENT}_[pd]\d{{4}}_\d{{2}}(?:_\d+)?$")
# Serialises everyone who creates or detaches partitions (pg_advisory_xact_lock(hashtext)).
_LOCK_NAME = f"{PARENT} partitions"

# Months whose partition this process has seen committed. Filled only after commit
# (``transaction.on_commit``): a partition created inside a transaction that then rolls
# back must not be remembered. Stale only if another process detaches a month; the write
# path then forgets it and creates the partition again (``services.events_store``).
_known: set[date] = set()


class PartitionError(Exception):
    """A partition cannot be created or detached as asked."""


class PartitionMissing(ServiceUnavailable):
    """Client events of a month that has no partition yet: refused for now, not stored.

    Only a deployment whose partition job has not run yet meets it (every month a client may
    report is created ahead); the job is asked for, and the client retries.
    """

    default_message = "Events of this period cannot be stored yet; try again shortly."

    def __init__(self, months: Iterable[date], *, retry_after: int = 30) -> None:
        super().__init__(retry_after=retry_after)
        self.months = sorted(months)


@dataclass(frozen=True, slots=True)
class Partition:
    """One table of the event log: attached (a partition) or detached (kept as an archive)."""

    name: str
    month: date
    attached: bool
    bytes: int
    rows_estimate: int | None  # PostgreSQL's statistics; None before the first ANALYZE


def month_start(moment: date | datetime) -> date:
    """The first day of ``moment``'s month, in UTC (a naive datetime is taken as UTC)."""
    if isinstance(moment, datetime) and moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return date(moment.year, moment.month, 1)


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    return date(index // 12, index % 12 + 1, 1)


def months_between(start: date | datetime, end: date | datetime) -> list[date]:
    """Every month from ``start``'s to ``end``'s, both included."""
    first, last = month_start(start), month_start(end)
    months = []
    while first <= last:
        months.append(first)
        first = add_months(first, 1)
    return months


def _yyyy_mm(month: date, sep: str = "_") -> str:
    # Not strftime's %Y: it does not pad years below 1000 ("999"), which breaks the names'
    # and bounds' fixed shape.
    return f"{month.year:04d}{sep}{month.month:02d}"


def partition_name(month: date) -> str:
    return f"{PARTITION_PREFIX}{_yyyy_mm(month)}"


def _bounds(month: date) -> tuple[str, str]:
    """``month``'s range as PostgreSQL timestamps. Built from integers: the upper bound of
    9999-12 is in year 10000, past what ``datetime.date`` can hold but not PostgreSQL."""
    following = month.year * 12 + month.month  # the next month, counted from year 0
    upper = f"{following // 12:04d}-{following % 12 + 1:02d}"
    return f"{_yyyy_mm(month, '-')}-01 00:00:00+00", f"{upper}-01 00:00:00+00"


def _lock(cursor) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_LOCK_NAME])


def _tables(cursor) -> list[tuple[str, bool, int, float]]:
    """(name, attached, bytes, reltuples) of every partition and detached partition."""
    cursor.execute(
        """
        SELECT c.relname, i.inhparent IS NOT NULL,
               pg_total_relation_size(c.oid), c.reltuples
        FROM pg_class c
        LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = %s::regclass
        WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace
          AND (i.inhparent IS NOT NULL OR c.relname LIKE %s)
        ORDER BY c.relname
        """,
        [PARENT, DETACHED_PREFIX.replace("_", r"\_") + "%"],
    )
    return cursor.fetchall()


def _month_of(name: str) -> date | None:
    match = _MONTH.search(name)
    return date(int(match[1]), int(match[2]), 1) if match else None


def _attached_months(cursor) -> dict[date, str]:
    return {
        month: name
        for name, attached, _, _ in _tables(cursor)
        if attached and (month := _month_of(name)) is not None
    }


def ensure_months(months: Iterable[date]) -> list[str]:
    """Create the partitions of ``months`` that do not exist yet; return the created names.

    Idempotent and safe against concurrent callers: the advisory lock lets one creator at
    a time look and create, and ``IF NOT EXISTS`` makes a repeat a no-op. Inside the
    caller's transaction when there is one (the lock and the new partitions last until it
    ends); otherwise in a transaction of its own.
    """
    wanted = sorted({month_start(m) for m in months})
    if not wanted:
        return []
    created = []
    with transaction.atomic(), connection.cursor() as cursor:
        _lock(cursor)
        attached = _attached_months(cursor)
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) "
            "AND relnamespace = current_schema()::regnamespace",
            [[partition_name(m) for m in wanted if m not in attached]],
        )
        squatters = [row[0] for row in cursor.fetchall()]
        if squatters:
            raise PartitionError(
                f"{', '.join(squatters)} exist(s) but is not a partition of {PARENT}: "
                "rename or drop it, then create the partition again."
            )
        for month in wanted:
            if month in attached:
                continue
            name = partition_name(month)
            lower, upper = _bounds(month)
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {PARENT} "
                f"FOR VALUES FROM ('{lower}') TO ('{upper}')"
            )
            created.append(name)
        present = set(attached) | set(wanted)
        transaction.on_commit(lambda: _known.update(present))
    if created:
        logger.info("features.partitions_created names=%s", ",".join(created))
    return created


def ensure_partitions(start: date | datetime, end: date | datetime) -> list[str]:
    """Create the missing monthly partitions from ``start``'s month to ``end``'s, inclusive."""
    return ensure_months(months_between(start, end))


def client_window_start(now: date | datetime | None = None) -> date:
    """The month of the oldest event a client may still report (``EVENTS_CLIENT_MAX_AGE_DAYS``
    before ``now``): from it on, every month must have its partition."""
    moment = now or timezone.now()
    return month_start(moment - timedelta(days=settings.EVENTS_CLIENT_MAX_AGE_DAYS))


def ensure_ahead(months: int = 3, *, today: date | None = None) -> list[str]:
    """The partitions from the oldest month a client may report to ``months`` months ahead."""
    this_month = month_start(today or timezone.now())
    return ensure_partitions(client_window_start(today), add_months(this_month, months))


def ensure_for(moments: Iterable[datetime]) -> None:
    """Make sure the months of ``moments`` have partitions before rows are inserted.

    The write path calls this for every batch: when every month is one this process has
    already seen, it costs no query.
    """
    missing = {month_start(m) for m in moments} - _known
    if missing:
        ensure_months(missing)


def missing_months(moments: Iterable[date | datetime]) -> set[date]:
    """The months of ``moments`` that have no partition; creates nothing.

    For the request path: months this process already knows cost no query; otherwise one
    read of ``pg_inherits``, which sees only committed partitions and takes no lock on the
    event log (unlike ``ensure_months``, whose ``CREATE TABLE … PARTITION OF`` locks it
    exclusively). The months found are remembered once the caller's transaction commits.
    """
    wanted = {month_start(m) for m in moments} - _known
    if not wanted:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [PARENT],
        )
        attached = {month for (name,) in cursor.fetchall() if (month := _month_of(name))}
    present = wanted & attached
    if present:
        transaction.on_commit(lambda: _known.update(present))
    return wanted - present


def forget(months: Iterable[date] | None = None) -> None:
    """Drop ``months`` (all if None) from this process's memory of existing partitions."""
    if months is None:
        _known.clear()
    else:
        _known.difference_update(months)


def is_missing_partition(exc: IntegrityError) -> bool:
    """True if ``exc`` is PostgreSQL's "no partition of relation … found for row"."""
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) == "23514" and "no partition" in str(cause)


def list_partitions() -> list[Partition]:
    """Attached partitions, then detached ones, each in month order."""
    with connection.cursor() as cursor:
        rows = _tables(cursor)
    found = [
        Partition(
            name=name,
            month=month,
            attached=bool(attached),
            bytes=int(size),
            rows_estimate=int(tuples) if tuples >= 0 else None,
        )
        for name, attached, size, tuples in rows
        if (month := _month_of(name)) is not None
    ]
    return sorted(found, key=lambda p: (not p.attached, p.month, p.name))


def count_rows(name: str) -> int:
    """Exact row count of one partition or detached table (a full scan)."""
    if not _TABLE_NAME.match(name):
        raise PartitionError(f"{name} is not a partition of {PARENT}")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {name}")
        return int(cursor.fetchone()[0])


def detach_partitions(older_than: date, *, today: date | None = None) -> list[tuple[str, str]]:
    """Detach every partition of a month before ``older_than``'s month, after storing its
    counts (``features_app.baseline``, ADR 0026); keep the tables.

    Each detached table is renamed ``features_app_userevent_dYYYY_MM`` (so that events
    arriving later for that month get a new partition), loses its foreign keys (an archive
    must not stop a user or an item from being deleted) and its id default, and stays in
    the database with its rows and indexes. The current month and later ones are never
    detached. Returns ``(old name, new name)`` pairs.

    Detached events leave every query of ``UserEvent``; their counts stay in the baseline,
    stored in the same transaction under the same advisory lock, which every recount of
    lifetime counters adds (reconcile, restore, the degraded path). The run holds the
    counting pause (``jobs.run``), so no reconcile, snapshot or restore reads the log
    halfway, and refuses a month with events still waiting to be counted (pending).
    """
    cutoff = month_start(older_than)
    today_ = today or timezone.now().date()
    this_month = month_start(today_)
    if cutoff > this_month:
        raise PartitionError(
            f"refusing to detach {this_month:%Y-%m} or later: only past months can be detached"
        )
    done: list[tuple[str, str]] = []
    with (
        jobs.run("detach", ttl_seconds=settings.FEATURES_JOB_LOCK_SECONDS, pause_counting=True),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        _lock(cursor)
        rules = forgetting.rules()
        now = timezone.now()
        attached = _attached_months(cursor)
        existing = {name for name, *_ in _tables(cursor)}
        for month in sorted(m for m in attached if m < cutoff):
            name = attached[month]
            new_name = f"{DETACHED_PREFIX}{_yyyy_mm(month)}"
            suffix = 1
            while new_name in existing:
                suffix += 1
                new_name = f"{DETACHED_PREFIX}{_yyyy_mm(month)}_{suffix}"
            # No event may reach the month between its count and its detach (a backfill):
            # SHARE blocks writes to this partition only; readers go on.
            cursor.execute(f"LOCK TABLE {name} IN SHARE MODE")
            _refuse_pending(cursor, name, month)
            baseline.record(name, table=new_name, month=month, forget=rules, now=now)
            cursor.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {name}")
            cursor.execute(f"ALTER TABLE {name} RENAME TO {new_name}")
            cursor.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'f'",
                [new_name],
            )
            for (constraint,) in cursor.fetchall():
                cursor.execute(f'ALTER TABLE {new_name} DROP CONSTRAINT "{constraint}"')
            # Nor may it hang on the log's id sequence, or keep index names that a new
            # partition of the same month would want.
            cursor.execute(f"ALTER TABLE {new_name} ALTER COLUMN id DROP DEFAULT")
            cursor.execute(
                "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass",
                [new_name],
            )
            for (index,) in cursor.fetchall():
                if index.startswith(name):
                    cursor.execute(f"ALTER INDEX {index} RENAME TO {new_name}{index[len(name) :]}")
            note = (
                f"Events of {_yyyy_mm(month, '-')} (UTC), detached from {PARENT} on "
                f"{today_:%Y-%m-%d}"
            )
            cursor.execute(f"COMMENT ON TABLE {new_name} IS %s", [note])
            existing.add(new_name)
            done.append((name, new_name))
    forget([m for m in attached if m < cutoff])
    if done:
        logger.info("features.partitions_detached names=%s", ",".join(n for n, _ in done))
    return done


def _refuse_pending(cursor, name: str, month: date) -> None:
    """PartitionError if a stored batch not yet counted holds an event of ``name``: its
    count would be in the baseline and then again in Redis once the sweep counts it."""
    waiting = [i for ids in PendingCount.objects.values_list("event_ids", flat=True) for i in ids]
    if not waiting:
        return
    cursor.execute(f"SELECT count(*) FROM {name} WHERE id = ANY(%s)", [waiting])
    if cursor.fetchone()[0]:
        raise PartitionError(
            f"events of {_yyyy_mm(month, '-')} wait to be counted (pending batches): detach "
            "it once the pending sweep has counted them"
        )
