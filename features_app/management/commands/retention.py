"""``manage.py retention``: delete what is past every log's window (ADR 0026)."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from features_app import retention
from features_app.jobs import JobBusy
from features_app.partitions import PartitionError


class Command(BaseCommand):
    """Run the retention job once (what the beat task ``inbo.features.retention`` does)."""

    help = (
        "Delete the rows of the append-only logs older than their windows (RETENTION_*_DAYS: "
        "served log, interactions, search log, exposures, decisions, bandit snapshots), in "
        "batches of --batch-size rows, one short transaction each; rows a running experiment "
        "still reads are kept. Detach the event log's months older than "
        "RETENTION_EVENT_LOG_MONTHS, their counts stored first as baselines. --dry-run counts "
        "what would go and changes nothing. --log NAME (repeatable) limits the run."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count, delete nothing.")
        parser.add_argument(
            "--log", action="append", dest="logs", metavar="NAME", choices=retention.names()
        )
        parser.add_argument("--batch-size", type=int, default=None, metavar="N")

    def handle(self, *args, dry_run: bool, logs: list[str] | None, batch_size: int | None, **o):
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be 1 or more")
        size = batch_size or settings.RETENTION_BATCH_SIZE
        done: dict[str, int] = {}

        def progress(name: str, n: int) -> None:
            done[name] = done.get(name, 0) + n
            self.stdout.write(f"  {name}: {done[name]} rows deleted so far")

        try:
            report = retention.run(dry_run=dry_run, only=logs, batch_size=size, progress=progress)
        except (JobBusy, PartitionError) as exc:
            raise CommandError(f"retention not run: {exc}") from None
        verb = "would delete" if dry_run else "deleted"
        for log in report.logs:
            why = " (held by a running experiment)" if log.held else ""
            oldest = f"{log.oldest:%Y-%m-%d %H:%M}" if log.oldest else "-"
            self.stdout.write(
                f"{log.name:<17} {verb} {log.rows:>10} rows before {log.cutoff:%Y-%m-%d %H:%M}"
                f"{why}; oldest {'now' if dry_run else 'left'} {oldest}"
            )
            for name in log.detached:
                self.stdout.write(f"  {'would detach' if dry_run else 'detached'} {name}")
            for name in log.dropped:
                self.stdout.write(f"  {'would drop' if dry_run else 'dropped'} {name}")
        self.stdout.write(f"{verb} {report.rows} rows in {report.seconds:.1f} s")
