"""``manage.py restore_counters``: rebuild Redis counters after a loss."""

from django.core.management.base import BaseCommand, CommandError

from features_app import snapshots
from features_app.jobs import JobBusy


class Command(BaseCommand):
    help = (
        "Rebuild the Redis counters from the latest snapshot plus every event stored after "
        "it (or from the whole event log when there is no snapshot), e.g. after a Redis "
        "restart without persistence. Counter keys are deleted first, so running it again "
        "counts nothing twice. Ingestion may go on: counting is paused meanwhile and the "
        "batches stored during the restore are counted after it (ADR 0016)."
    )

    def handle(self, *args, **options):
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            self.stderr.write(f"\r  replayed {done} events", ending="")

        try:
            report = snapshots.restore(progress=progress)
        except JobBusy as exc:
            raise CommandError(f"Busy: {exc}; restore after it.") from None
        if done:
            self.stderr.write("")
        source = f"snapshot {report.snapshot_id}" if report.snapshot_id else "no snapshot"
        self.stdout.write(
            f"restored {report.keys_restored} keys from {source}, replayed "
            f"{report.events_replayed} events ({report.seconds:.2f}s)"
        )
