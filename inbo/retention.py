"""How long the append-only logs keep their rows, and the batched deletes that enforce it
(ADR 0026, docs/OPERATIONS.md "Retention").

Each app declares its logs in its own ``retention.py`` (found by :func:`logs`, as Django
finds ``admin.py``): a table, the column that dates a row, a window read from settings at
run time, and the rows kept whatever their age (``keep``). Another app may *hold* a log:
:func:`hold` registers a function that names the oldest moment that log must still keep
(experiments keep the served log and the interactions of running experiments), so no app
needs to import the other.

A purge deletes in bounded batches, each its own short transaction:
``DELETE … WHERE pk IN (SELECT pk … ORDER BY … LIMIT n FOR UPDATE SKIP LOCKED)`` locks only
the rows it deletes, so readers and writers of newer rows never wait on it. The job that runs
the purges, with its lock, status and metrics, is ``features_app.retention``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils.module_loading import autodiscover_modules

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Log:
    """One append-only table and how long its rows live.

    ``order``: the column batches are taken in (an indexed one: the time column when it has
    an index, else the primary key, whose order follows the rows' arrival). ``keep``: SQL
    of the rows kept whatever their age; it may use ``%(cutoff)s``. ``children``: ``(table,
    column)`` of rows that point at a deleted row and go with it (their foreign key has no
    ``ON DELETE`` in the database)."""

    name: str
    table: str
    pk: str
    time_column: str
    window_days: Callable[[], int]
    order: str = ""
    keep: str = ""
    children: tuple[tuple[str, str], ...] = ()

    @property
    def order_by(self) -> str:
        return self.order or self.time_column


_logs: dict[str, Log] = {}
_holds: list[Callable[[str], datetime | None]] = []
_discovered = False


def register(log: Log) -> Log:
    _logs[log.name] = log
    return log


def hold(source: Callable[[str], datetime | None]) -> None:
    """``source(log name)``: the oldest moment that log must keep (None: no hold)."""
    if source not in _holds:
        _holds.append(source)


def logs() -> list[Log]:
    """Every declared log, once each app's ``retention`` module is imported."""
    global _discovered
    if not _discovered:
        autodiscover_modules("retention")
        _discovered = True
    return [_logs[name] for name in sorted(_logs)]


def held_since(name: str) -> datetime | None:
    """The oldest moment any hold keeps for log ``name``."""
    found = [t for source in _holds if (t := source(name)) is not None]
    return min(found, default=None)


def cutoff(log: Log, *, now: datetime) -> tuple[datetime, bool]:
    """Rows dated before this go: the window, or earlier while a hold needs them. The flag
    says whether a hold moved it."""
    edge = now - log.window_days() * DAY
    held = held_since(log.name)
    if held is not None and held < edge:
        return held, True
    return edge, False


def _where(log: Log) -> str:
    where = f"{log.time_column} < %(cutoff)s"
    return f"{where} AND NOT ({log.keep})" if log.keep else where


def due(log: Log, *, at: datetime) -> int:
    """How many rows a purge with cutoff ``at`` would delete (a count: may scan)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {log.table} WHERE {_where(log)}", {"cutoff": at})
        return int(cursor.fetchone()[0])


def delete_batch(log: Log, *, at: datetime, size: int) -> int:
    """Delete at most ``size`` rows dated before ``at`` (and their children), oldest first,
    in one short transaction; rows another transaction holds are left to the next batch."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {log.pk} FROM {log.table} WHERE {_where(log)} "
            f"ORDER BY {log.order_by} LIMIT %(size)s FOR UPDATE SKIP LOCKED",
            {"cutoff": at, "size": size},
        )
        ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return 0
        for table, column in log.children:
            cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", [ids])
        cursor.execute(f"DELETE FROM {log.table} WHERE {log.pk} = ANY(%s)", [ids])
        return cursor.rowcount


def purge(
    log: Log,
    *,
    at: datetime,
    batch_size: int,
    pause: float = 0.0,
    progress: Callable[[int], None] | None = None,
    renew: Callable[[], None] | None = None,
) -> int:
    """Delete every row dated before ``at``, a batch at a time; returns how many."""
    deleted = 0
    while True:
        n = delete_batch(log, at=at, size=batch_size)
        deleted += n
        if n and progress:
            progress(n)
        if n < batch_size:
            return deleted
        if renew:
            renew()
        if pause:
            time.sleep(pause)  # let autovacuum and replicas keep up between batches


def oldest(log: Log, *, at: datetime) -> datetime | None:
    """The date of the first row in ``order`` that the window governs (rows ``keep`` holds
    are left out; ``at``: the cutoff ``keep`` may refer to): the oldest such row when
    ``order`` is the time column, else the first stored. An index probe when nothing is
    kept; otherwise it reads past the kept rows."""
    where = f"WHERE NOT ({log.keep})" if log.keep else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {log.time_column} FROM {log.table} {where} ORDER BY {log.order_by} LIMIT 1",
            {"cutoff": at},
        )
        row = cursor.fetchone()
    return row[0] if row else None
