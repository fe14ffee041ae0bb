"""``manage.py reconcile_features [--dry-run]``: recount from the log, report and repair."""

from django.core.management.base import BaseCommand, CommandError

from features_app import reconcile
from features_app.jobs import JobBusy


class Command(BaseCommand):
    help = (
        "Recompute every counter family from UserEvent (the source of truth) at a consistent "
        "cut, compare with Redis and ItemFeature, print the drift per family and repair it "
        "(unless --dry-run). Counting pauses meanwhile; batches stored during the run are "
        "counted after it (ADR 0016)."
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
                total = d.total if isinstance(d.total, int) else f"{d.total:.4g}"
                self.stdout.write(f"  {store:<13} {name:<22} {d.items:>7} items  {total:>9} off")
        verb = "would repair" if dry_run else "repaired"
        self.stdout.write(f"total drift {report.total_drift:.6g} ({verb})")
