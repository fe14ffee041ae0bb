"""Retire the active version of a model kind and restore the one it replaced."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from experience_app import public as experience
from inbo.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Roll back: the active version of KIND is retired and the version it replaced is "
        "active again (none: the feed serves the linear ranking). Web workers follow within "
        "ML_MODEL_RELOAD_SECONDS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=experience.ModelVersion.Kind.values)

    def handle(self, *args, **options) -> None:
        try:
            restored = experience.model_rollback(options["kind"], by="manage.py")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        now = restored.label if restored else "the linear ranking"
        self.stdout.write(self.style.SUCCESS(f"Rolled back: serving {now}."))
