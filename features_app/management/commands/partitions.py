"""``manage.py partitions``: create, detach and list the event log's monthly partitions."""

from __future__ import annotations

import argparse
from datetime import date, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser

from features_app import partitions
from features_app.jobs import JobBusy


def _month(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m").date()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a month as YYYY-MM, got {value!r}") from None


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class Command(BaseCommand):
    """Maintain the monthly partitions of ``UserEvent`` (see ``features_app.partitions``)."""

    help = (
        "Maintain the monthly partitions of the event log (UserEvent, partitioned by "
        "occurred_at, UTC months). --ensure-ahead N creates this month's partition and the "
        "next N (idempotent; the beat task inbo.features.ensure_partitions does it daily "
        "with N=3). --detach-older-than YYYY-MM detaches every partition of a month before "
        "that one: the table is kept, renamed features_app_userevent_dYYYY_MM, without its "
        "foreign keys; its events leave every query, their counts stay in a baseline that "
        "reconciliation, restore and the degraded path add (ADR 0026). --list "
        "(the default when nothing else is asked) prints attached partitions and detached "
        "tables; --count adds exact row counts (a full scan of each)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ensure-ahead", type=int, metavar="N", default=None)
        parser.add_argument("--detach-older-than", type=_month, metavar="YYYY-MM", default=None)
        parser.add_argument("--list", action="store_true")
        parser.add_argument("--count", action="store_true", help="Exact row counts in --list.")

    def handle(
        self,
        *args,
        ensure_ahead: int | None,
        detach_older_than: date | None,
        list: bool,
        count: bool,
        **options,
    ) -> None:
        if ensure_ahead is not None:
            if ensure_ahead < 0:
                raise CommandError("--ensure-ahead must be 0 or more")
            created = partitions.ensure_ahead(ensure_ahead)
            if created:
                self.stdout.write(f"created {len(created)} partition(s): {', '.join(created)}")
            else:
                self.stdout.write(
                    f"this month's partition and the next {ensure_ahead} already exist"
                )
        if detach_older_than is not None:
            try:
                detached = partitions.detach_partitions(detach_older_than)
            except (partitions.PartitionError, JobBusy) as exc:
                raise CommandError(f"not detached: {exc}") from None
            if not detached:
                self.stdout.write(f"no partition before {detach_older_than:%Y-%m} to detach")
            for old, new in detached:
                self.stdout.write(
                    f"detached {old} -> {new} (kept, {partitions.count_rows(new)} rows)"
                )
        if list or (ensure_ahead is None and detach_older_than is None):
            self._list(count=count)

    def _list(self, *, count: bool) -> None:
        found = partitions.list_partitions()
        rows_title = "rows" if count else "rows (estimate)"
        for attached, title in ((True, "attached partitions"), (False, "detached tables")):
            group = [p for p in found if p.attached is attached]
            self.stdout.write(f"{title} of {partitions.PARENT}: {len(group)}")
            if not group:
                continue
            self.stdout.write(f"  {'month':<8} {'table':<40} {'size':>10}  {rows_title}")
            for p in group:
                if count:
                    rows = str(partitions.count_rows(p.name))
                else:
                    rows = "?" if p.rows_estimate is None else f"~{p.rows_estimate}"
                self.stdout.write(f"  {p.month:%Y-%m}  {p.name:<40} {_size(p.bytes):>10}  {rows}")
