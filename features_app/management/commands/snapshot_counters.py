"""``manage.py snapshot_counters``: back up the Redis counters to PostgreSQL now."""

from django.core.management.base import BaseCommand, CommandError

from features_app import snapshots
from features_app.jobs import JobBusy


class Command(BaseCommand):
    help = "Copy every feature-store key from Redis into a snapshot in PostgreSQL."

    def handle(self, *args, **options):
        try:
            snap = snapshots.snapshot_take()
        except JobBusy:
            raise CommandError("A snapshot is already being taken.") from None
        self.stdout.write(
            f"snapshot {snap.pk}: {snap.key_count} keys, {snap.size_bytes} bytes, "
            f"events up to id {snap.last_event_id}"
        )
