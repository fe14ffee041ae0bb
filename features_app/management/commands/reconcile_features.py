"""``manage.py reconcile_features [--dry-run]``: recount from the log, report and repair."""

from django.core.management.base import BaseCommand, CommandError

from features_app import reconcile
from features_app.jobs import JobBusy


class Command(BaseCommand):
    help = (
        "Recompute counters from UserEvent (the source of truth), compare with Redis and "
        "ItemFeature, print the drift per counter and repair it (unless --dry-run)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Report only; change nothing.")

    def handle(self, *args, dry_run: bool, **options):
        try:
            report = reconcile.reconcile(dry_run=dry_run)
        except JobBusy:
            raise CommandError("A reconciliation is already running.") from None
        self.stdout.write(
            f"checked {report.items_checked} items and {report.users_checked} users "
            f"in {report.seconds:.2f}s"
        )
        for store, drift in (("redis", report.redis), ("item_feature", report.item_feature)):
            if not drift:
                self.stdout.write(f"  {store:<13} no drift")
            for name in sorted(drift):
                d = drift[name]
                self.stdout.write(f"  {store:<13} {name:<22} {d.items:>7} items  {d.total:>9} off")
        verb = "would repair" if dry_run else "repaired"
        self.stdout.write(f"total drift {report.total_drift} ({verb})")
