"""Make a model version active (the gate it passed at training time is checked)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from experience_app import public as experience
from inbo.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Promote a candidate version: it must have passed its gate against the version "
        "active now. --force restores any version (e.g. a known-good retired one)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("version_id", type=int, help="The id model_list shows.")
        parser.add_argument("--force", action="store_true")

    def handle(self, *args, **options) -> None:
        try:
            version = experience.model_promote(
                options["version_id"], force=options["force"], by="manage.py"
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        gate = version.gate or {}
        self.stdout.write(
            f"gate: {gate.get('metric')} {gate.get('candidate')} vs {gate.get('baseline')} "
            f"({gate.get('baseline_name')})"
        )
        self.stdout.write(self.style.SUCCESS(f"{version.label} is now active."))
