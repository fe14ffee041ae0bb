"""``manage.py setup_local``: everything the run command needs before it starts servers."""

from __future__ import annotations

from django.core.management import call_command
from django.core.management.base import BaseCommand

from inbo import setup
from reading_app.public import catalog_counts


class Command(BaseCommand):
    help = (
        "Create the database if missing, migrate, create the demo admin login and seed the "
        "demo world when the catalog is empty. Safe to run any number of times."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--skip-create-db",
            action="store_true",
            help="Do not try to create the database (it is managed elsewhere, e.g. Docker).",
        )
        parser.add_argument("--no-seed", action="store_true", help="Never seed demo data.")
        parser.add_argument(
            "--size",
            choices=["small", "default"],
            default="default",
            help="Size of the demo world when seeding (small is for tests).",
        )

    def handle(self, *args, skip_create_db: bool, no_seed: bool, size: str, **options):
        if not skip_create_db:
            created = setup.ensure_database()
            self._step("database", "created" if created else "exists")
        call_command("migrate", interactive=False, verbosity=0)
        self._step("migrations", "applied")
        self._step("demo admin", "created" if setup.ensure_demo_admin() else "exists")
        if no_seed:
            self._step("demo data", "skipped (--no-seed)")
        elif catalog_counts()["items"] == 0:
            from experience_app.services.demo import PRESETS, seed_demo

            counts = seed_demo(**PRESETS[size], stdout=self.stdout)
            created = ", ".join(f"{v['created']} {k.replace('_', ' ')}" for k, v in counts.items())
            self._step("demo data", f"seeded: {created}")
        else:
            self._step("demo data", "catalog not empty, left as is")

    def _step(self, name: str, outcome: str) -> None:
        self.stdout.write(f"  {name:<12} {outcome}")
