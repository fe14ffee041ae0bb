"""``manage.py migrate_counters [--dry-run] [--batch N]``: day buckets from v1 to v2."""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from features_app import counters_migration
from inbo import redis as inbo_redis


class Command(BaseCommand):
    help = (
        "Move the day buckets of the item counters from the v1 layout (one hash per day) to "
        "v2 (one small hash per day and block of items), each field exactly once, then "
        "delete the v1 hashes. Idempotent and resumable (a second run finds nothing); safe "
        "while ingestion, reconcile, snapshots and restores run (it waits while counting is "
        "paused). docs/FEATURE_STORE.md."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would move; change nothing."
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=500,
            help="Fields per atomic step, and keys per SCAN call (default 500).",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=600.0,
            help="Seconds to wait for a job's counting pause before giving up (default 600).",
        )

    def handle(self, *args, dry_run: bool, batch: int, wait: float, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1.")
        client = inbo_redis.state()
        verb = "would move" if dry_run else "moved"

        def progress(done: counters_migration.DayMoved) -> None:
            date = datetime.fromtimestamp(done.day * 86400, tz=UTC).date()
            self.stdout.write(
                f"  day {date} ({done.day}): {verb} {done.fields:,} fields into "
                f"{done.buckets:,} hashes"
            )

        days = counters_migration.legacy_days(client, count=batch)
        self.stdout.write(f"{len(days)} day(s) in the v1 layout")
        try:
            report = counters_migration.migrate(
                client, batch=batch, dry_run=dry_run, wait_seconds=wait, progress=progress
            )
        except counters_migration.MigrationPaused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{verb} {report.fields:,} fields of {len(report.days)} day(s) in {report.seconds:.2f}s"
        )
