"""What the database spends its time on, and which indexes earn their keep.

Three reads of PostgreSQL's own statistics, for ``manage.py db_report``
(docs/OPERATIONS.md "Index discipline"):

* the statements that took the most total time (``pg_stat_statements``: the extension must
  be preloaded and created, the report says so when it is not);
* indexes no scan has used since the statistics were reset, with the writes their table
  took meanwhile (every insert and update pays for every index; unique and primary keys,
  which enforce something, are left out);
* tables read by sequential scans although they hold rows (a hot query without its index);
* indexes whose key is the leading part of another index of the same table (the longer one
  serves every lookup the shorter does, deletes by a foreign key included).

A partitioned table (the event log) is reported once: its partitions' figures are summed
under the parent table and the parent index.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connection, transaction

EXTENSION = "pg_stat_statements"
# The report's own statements start with "/* db_report */": its top queries leave them out
# (pg_stat_statements keeps a statement's text as first sent, comments included).


@dataclass(frozen=True, slots=True)
class TopQuery:
    """One normalized statement of this database, as pg_stat_statements counts it."""

    query: str
    calls: int
    total_ms: float
    mean_ms: float
    rows: int
    share: float  # of the total time of every statement of this database
    hit_ratio: float | None  # shared buffers found in memory, of those read


@dataclass(frozen=True, slots=True)
class UnusedIndex:
    """An index no scan used since the statistics were reset."""

    table: str
    index: str
    definition: str
    size_bytes: int
    partitions: int  # indexes summed (one per partition of a partitioned table)
    inserts: int
    updates: int
    deletes: int
    write_heavy: bool

    @property
    def writes(self) -> int:
        return self.inserts + self.updates + self.deletes


@dataclass(frozen=True, slots=True)
class SeqScannedTable:
    """A table that sequential scans read, with how often its indexes were used instead."""

    table: str
    seq_scan: int
    seq_tup_read: int
    idx_scan: int
    live_rows: int
    seq_ratio: float  # sequential scans of all scans
    rows_per_seq_scan: int


@dataclass(frozen=True, slots=True)
class CoveredIndex:
    """An index another index of the same table makes redundant: its key columns (same
    operator classes, no predicate, no expression) lead the other's."""

    table: str
    index: str
    covered_by: str
    idx_scan: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Report:
    """The three lists, and what was missing to fill them."""

    database: str
    stats_since: datetime | None
    statements_since: datetime | None
    statements_missing: str | None  # why the top queries are empty
    top_queries: list[TopQuery] = field(default_factory=list)
    unused_indexes: list[UnusedIndex] = field(default_factory=list)
    seq_scanned_tables: list[SeqScannedTable] = field(default_factory=list)
    covered_indexes: list[CoveredIndex] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for row, index in zip(data["unused_indexes"], self.unused_indexes, strict=True):
            row["writes"] = index.writes
        return data


def shorten(query: str, width: int) -> str:
    """One line of at most ``width`` characters."""
    text = re.sub(r"\s+", " ", query).strip()
    return text if len(text) <= width else text[: width - 1] + "…"


def statements_missing() -> str | None:
    """Why pg_stat_statements cannot be read here, or None when it can. Asks the view
    itself: a role without pg_read_all_settings may not read shared_preload_libraries."""
    with connection.cursor() as cursor:
        cursor.execute("/* db_report */ SELECT 1 FROM pg_extension WHERE extname = %s", [EXTENSION])
        if cursor.fetchone() is None:
            return (
                "pg_stat_statements is not created in this database: CREATE EXTENSION "
                "pg_stat_statements (as a role allowed to; the migrations do it where they "
                "may), with the library preloaded (docs/OPERATIONS.md, Index discipline)"
            )
        try:
            with transaction.atomic():
                cursor.execute("/* db_report */ SELECT 1 FROM pg_stat_statements LIMIT 1")
        except DatabaseError:  # "must be loaded via shared_preload_libraries"
            return (
                "pg_stat_statements is not preloaded: add it to shared_preload_libraries and "
                "restart PostgreSQL (docs/OPERATIONS.md, Index discipline)"
            )
    return None


_TOP = """/* db_report */
WITH s AS (
    SELECT query, calls, total_exec_time, rows, shared_blks_hit, shared_blks_read
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT query, calls, total_exec_time, total_exec_time / greatest(calls, 1), rows,
       total_exec_time / nullif(sum(total_exec_time) OVER (), 0),
       shared_blks_hit::float8 / nullif(shared_blks_hit + shared_blks_read, 0)
FROM s
WHERE query NOT LIKE '/* db_report */%%'
ORDER BY total_exec_time DESC
LIMIT %s
"""


def top_queries(limit: int) -> list[TopQuery]:
    """The ``limit`` statements of this database with the most total execution time."""
    with connection.cursor() as cursor:
        cursor.execute(_TOP, [limit])
        return [
            TopQuery(
                query=query,
                calls=int(calls),
                total_ms=round(float(total), 3),
                mean_ms=round(float(mean), 3),
                rows=int(rows),
                share=round(float(share or 0.0), 4),
                hit_ratio=None if hit is None else round(float(hit), 4),
            )
            for query, calls, total, mean, rows, share, hit in cursor.fetchall()
        ]


# Each index and table rolled up to its partitioned parent, if any (one level: the event log).
_INDEXES = """/* db_report */
WITH idx AS (
    SELECT s.indexrelid, s.idx_scan, t.n_tup_ins, t.n_tup_upd, t.n_tup_del,
           coalesce(pi.inhparent, s.indexrelid) AS root_index,
           coalesce(pt.inhparent, s.relid) AS root_table
    FROM pg_stat_user_indexes s
    JOIN pg_stat_user_tables t ON t.relid = s.relid
    LEFT JOIN pg_inherits pi ON pi.inhrelid = s.indexrelid
    LEFT JOIN pg_inherits pt ON pt.inhrelid = s.relid
)
SELECT idx.root_table::regclass::text, idx.root_index::regclass::text,
       pg_get_indexdef(idx.root_index), sum(pg_relation_size(idx.indexrelid)), count(*),
       sum(idx.n_tup_ins), sum(idx.n_tup_upd), sum(idx.n_tup_del)
FROM idx
JOIN pg_index i ON i.indexrelid = idx.root_index
WHERE NOT i.indisunique AND NOT i.indisprimary
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = idx.root_index)
GROUP BY idx.root_table, idx.root_index
HAVING sum(idx.idx_scan) = 0
ORDER BY sum(idx.n_tup_ins + idx.n_tup_upd + idx.n_tup_del) DESC,
         sum(pg_relation_size(idx.indexrelid)) DESC, 2
"""


def unused_indexes(*, write_heavy: int) -> list[UnusedIndex]:
    """Indexes never scanned (unique and primary keys left out), the most written tables
    first; ``write_heavy``: the writes from which a table is flagged."""
    with connection.cursor() as cursor:
        cursor.execute(_INDEXES)
        rows = cursor.fetchall()
    found = []
    for table, index, definition, size, parts, ins, upd, dele in rows:
        ins, upd, dele = int(ins), int(upd), int(dele)
        found.append(
            UnusedIndex(
                table=table,
                index=index,
                definition=definition,
                size_bytes=int(size),
                partitions=int(parts),
                inserts=ins,
                updates=upd,
                deletes=dele,
                write_heavy=ins + upd + dele >= write_heavy,
            )
        )
    return found


_SEQ = """/* db_report */
WITH t AS (
    SELECT coalesce(p.inhparent, s.relid) AS root, s.seq_scan, s.seq_tup_read,
           coalesce(s.idx_scan, 0) AS idx_scan, s.n_live_tup
    FROM pg_stat_user_tables s
    LEFT JOIN pg_inherits p ON p.inhrelid = s.relid
)
SELECT root::regclass::text, sum(seq_scan), sum(seq_tup_read), sum(idx_scan), sum(n_live_tup)
FROM t
GROUP BY root
HAVING sum(seq_scan) > 0 AND sum(n_live_tup) >= %s
ORDER BY sum(seq_tup_read) DESC, 1
LIMIT %s
"""


def seq_scanned_tables(*, min_rows: int, limit: int) -> list[SeqScannedTable]:
    """Tables of at least ``min_rows`` live rows that sequential scans read, the most rows
    read that way first."""
    with connection.cursor() as cursor:
        cursor.execute(_SEQ, [min_rows, limit])
        rows = cursor.fetchall()
    return [
        SeqScannedTable(
            table=table,
            seq_scan=int(seq),
            seq_tup_read=int(read),
            idx_scan=int(idx),
            live_rows=int(live),
            seq_ratio=round(int(seq) / (int(seq) + int(idx)), 4),
            rows_per_seq_scan=int(read) // int(seq),
        )
        for table, seq, read, idx, live in rows
    ]


# ``a`` is covered by ``b``: same table and access method, a's columns and operator classes
# lead b's, neither partial nor on expressions. Of two identical non-unique indexes, the
# later one is reported.
_COVERED = """/* db_report */
SELECT a.indrelid::regclass::text, a.indexrelid::regclass::text,
       min(b.indexrelid::regclass::text), coalesce(s.idx_scan, 0),
       pg_relation_size(a.indexrelid)
FROM pg_index a
JOIN pg_class ca ON ca.oid = a.indexrelid
JOIN pg_index b ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid
JOIN pg_class cb ON cb.oid = b.indexrelid
LEFT JOIN pg_stat_user_indexes s ON s.indexrelid = a.indexrelid
WHERE ca.relnamespace = current_schema()::regnamespace AND NOT ca.relispartition
  AND NOT a.indisunique AND NOT a.indisprimary AND ca.relam = cb.relam
  AND a.indpred IS NULL AND b.indpred IS NULL AND a.indexprs IS NULL AND b.indexprs IS NULL
  AND (b.indkey::text || ' ') LIKE (a.indkey::text || ' %%')
  AND (b.indclass::text || ' ') LIKE (a.indclass::text || ' %%')
  AND NOT (a.indkey::text = b.indkey::text AND a.indexrelid < b.indexrelid AND NOT b.indisunique)
GROUP BY a.indrelid, a.indexrelid, s.idx_scan
ORDER BY 1, 2
"""


def covered_indexes() -> list[CoveredIndex]:
    """Indexes whose every lookup another index of the table can serve."""
    with connection.cursor() as cursor:
        cursor.execute(_COVERED)
        return [
            CoveredIndex(
                table=table, index=index, covered_by=by, idx_scan=int(scans), size_bytes=int(size)
            )
            for table, index, by, scans, size in cursor.fetchall()
        ]


def _stats_since() -> tuple[str, datetime | None, datetime | None]:
    with connection.cursor() as cursor:
        cursor.execute(
            "/* db_report */ SELECT current_database(), stats_reset FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        database, since = cursor.fetchone()
    statements_since = None
    if statements_missing() is None:
        with connection.cursor() as cursor:
            cursor.execute("/* db_report */ SELECT stats_reset FROM pg_stat_statements_info")
            statements_since = cursor.fetchone()[0]
    return database, since, statements_since


def report(*, limit: int, write_heavy: int, min_rows: int) -> Report:
    """The whole report; the top queries empty, with the reason, without the extension."""
    missing = statements_missing()
    database, since, statements_since = _stats_since()
    return Report(
        database=database,
        stats_since=since,
        statements_since=statements_since,
        statements_missing=missing,
        top_queries=[] if missing else top_queries(limit),
        unused_indexes=unused_indexes(write_heavy=write_heavy),
        seq_scanned_tables=seq_scanned_tables(min_rows=min_rows, limit=limit),
        covered_indexes=covered_indexes(),
    )


def reset() -> list[str]:
    """Start counting again: statements (when the extension is there) and this database's
    table and index counters. Returns what was reset; a counter the role may not reset is
    named as such."""
    done = []
    targets = [("table and index statistics", "/* db_report */ SELECT pg_stat_reset()")]
    if statements_missing() is None:
        targets.insert(
            0, ("statement statistics", "/* db_report */ SELECT pg_stat_statements_reset()")
        )
    for name, sql in targets:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(sql)
            done.append(name)
        except DatabaseError as exc:  # insufficient privilege on a managed server
            done.append(f"{name}: not reset ({str(exc).strip()})")
    return done
