"""Train, gate and register a LightGBM reranker version from the served log."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from ml_app.services.reranker_training import train_reranker


class Command(BaseCommand):
    help = (
        "Train the learned reranker (LightGBM lambdarank) on the last --days of the served "
        "log, score it on the later responses it was not trained on against the active "
        "version (or the linear ranking), register it, and promote it if the gate passed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=None, help="Training window (days).")
        parser.add_argument(
            "--no-promote", action="store_true", help="Register only; promote by hand."
        )
        parser.add_argument("--min-responses", type=int, default=50)

    def handle(self, *args, **options) -> None:
        result = train_reranker(
            days=options["days"],
            promote=False if options["no_promote"] else None,
            min_groups=options["min_responses"],
            out=self.stdout.write,
        )
        if result.version is None:
            self.stdout.write(self.style.WARNING(result.message))
