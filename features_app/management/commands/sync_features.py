"""``manage.py sync_features``: copy validated Redis counters to ItemFeature now."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from features_app import sync


class Command(BaseCommand):
    help = "Sync changed items' counters from Redis to ItemFeature (validated; idempotent)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--batch-size",
            type=int,
            default=settings.FEATURES_SYNC_BATCH_SIZE,
            help="Items per batch (default: FEATURES_SYNC_BATCH_SIZE).",
        )

    def handle(self, *args, batch_size: int, **options):
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            self.stderr.write(f"\r  synced {done} items", ending="")

        try:
            report = sync.sync_features(batch_size=batch_size, progress=progress)
        except sync.JobBusy:
            raise CommandError("A sync is already running.") from None
        if done:
            self.stderr.write("")
        self.stdout.write(
            f"synced {report.synced} items, quarantined {report.quarantined}, "
            f"skipped {report.skipped_missing} deleted, {report.remaining} left "
            f"({report.seconds:.2f}s)"
        )
        for problem in report.problems[:50]:
            self.stdout.write(f"  quarantined: {problem}")
