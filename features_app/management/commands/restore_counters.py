"""``manage.py restore_counters``: rebuild Redis counters after a loss."""

from django.core.management.base import BaseCommand

from features_app import snapshots


class Command(BaseCommand):
    help = (
        "Rebuild the Redis counters from the latest snapshot plus every event stored after "
        "it (or from the whole event log when there is no snapshot). Meant for an empty "
        "state database, e.g. after a Redis restart without persistence."
    )

    def handle(self, *args, **options):
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            self.stderr.write(f"\r  replayed {done} events", ending="")

        report = snapshots.restore(progress=progress)
        if done:
            self.stderr.write("")
        source = f"snapshot {report.snapshot_id}" if report.snapshot_id else "no snapshot"
        self.stdout.write(
            f"restored {report.keys_restored} keys from {source}, replayed "
            f"{report.events_replayed} events ({report.seconds:.2f}s)"
        )
