"""``manage.py segments``: recompute every user's engagement segment and interest cluster."""

from django.core.management.base import BaseCommand, CommandError

from features_app import segments
from features_app.jobs import JobBusy


class Command(BaseCommand):
    help = (
        "Recompute users' engagement segments and interest clusters from the event log, "
        "and today's segment sizes (what the hourly beat task does; idempotent)."
    )

    def handle(self, *args, **options):
        try:
            run = segments.compute_segments(progress=self.stdout.write)
        except JobBusy:
            raise CommandError("A segmentation run is already running.") from None
        self.stdout.write(
            f"segmented {run.users} users ({run.clustered} in {len(run.clusters)} clusters) "
            f"at {run.computed_at:%Y-%m-%d %H:%M:%S}"
        )
