"""The database's top queries, unused indexes and sequentially scanned tables."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from monitoring import db_report


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class Command(BaseCommand):
    """``manage.py db_report``: where PostgreSQL spends its time and which indexes no query
    uses, since the statistics were last reset (docs/OPERATIONS.md "Index discipline").
    ``--reset`` starts counting again: reset, put the app under its usual load, report."""

    help = (
        "Top queries by total time (pg_stat_statements), indexes never used and tables "
        "scanned sequentially, since the last reset."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=15, help="queries and tables listed")
        parser.add_argument(
            "--write-heavy",
            type=int,
            default=10_000,
            help="writes (inserts, updates, deletes) from which a table counts as write-heavy",
        )
        parser.add_argument(
            "--min-rows",
            type=int,
            default=1_000,
            help="live rows from which a sequentially scanned table is listed",
        )
        parser.add_argument("--width", type=int, default=100, help="query text shown, in chars")
        parser.add_argument("--json", action="store_true", help="one JSON document")
        parser.add_argument(
            "--reset", action="store_true", help="reset the statistics (and report nothing)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["reset"]:
            done = db_report.reset()
            if options["json"]:
                self.stdout.write(json.dumps({"reset": done}))
            else:
                for name in done:
                    self.stdout.write(f"reset: {name}")
            return
        data = db_report.report(
            limit=options["limit"],
            write_heavy=options["write_heavy"],
            min_rows=options["min_rows"],
        )
        if options["json"]:
            self.stdout.write(json.dumps(data.as_dict(), default=str, indent=2))
            return
        self._text(data, width=options["width"])

    def _text(self, data: db_report.Report, *, width: int) -> None:
        out = self.stdout.write
        heading = self.style.MIGRATE_HEADING
        out(heading(f"Database {data.database}, table statistics since {data.stats_since}"))

        out(heading(f"\nTop queries by total time (since {data.statements_since})"))
        if data.statements_missing:
            out(self.style.WARNING(data.statements_missing))
        elif not data.top_queries:
            out("no statements recorded yet")
        else:
            out(
                f"{'calls':>9} {'total ms':>11} {'mean ms':>9} {'rows':>9} {'share':>6} "
                f"{'hit':>6}  query"
            )
            for q in data.top_queries:
                hit = "-" if q.hit_ratio is None else f"{q.hit_ratio:.0%}"
                out(
                    f"{q.calls:>9} {q.total_ms:>11.1f} {q.mean_ms:>9.2f} {q.rows:>9} "
                    f"{q.share:>6.1%} {hit:>6}  {db_report.shorten(q.query, width)}"
                )

        out(heading("\nIndexes never used (unique and primary keys left out)"))
        if not data.unused_indexes:
            out("none")
        for ix in data.unused_indexes:
            flag = self.style.ERROR(" WRITE-HEAVY") if ix.write_heavy else ""
            parts = f", {ix.partitions} partitions" if ix.partitions > 1 else ""
            out(
                f"{ix.table}.{ix.index}: {_size(ix.size_bytes)}{parts}; table writes "
                f"{ix.inserts} ins / {ix.updates} upd / {ix.deletes} del{flag}"
            )
            out(f"    {db_report.shorten(ix.definition, width)}")

        out(heading("\nTables read by sequential scans"))
        if not data.seq_scanned_tables:
            out("none")
        else:
            out(
                f"{'seq scans':>10} {'rows read':>12} {'idx scans':>10} {'live rows':>10} "
                f"{'seq %':>6} {'rows/scan':>10}  table"
            )
        for t in data.seq_scanned_tables:
            out(
                f"{t.seq_scan:>10} {t.seq_tup_read:>12} {t.idx_scan:>10} {t.live_rows:>10} "
                f"{t.seq_ratio:>6.1%} {t.rows_per_seq_scan:>10}  {t.table}"
            )

        out(heading("\nIndexes covered by another (its key leads the other's)"))
        if not data.covered_indexes:
            out("none")
        for c in data.covered_indexes:
            out(
                f"{c.table}.{c.index}: {_size(c.size_bytes)}, {c.idx_scan} scans; "
                f"covered by {c.covered_by}"
            )
