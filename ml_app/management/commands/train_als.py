"""``manage.py train_als``: train an ALS version from the event log now."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.services.als_candidates import Busy
from ml_app.services.als_training import train_als


class Command(BaseCommand):
    help = (
        "Train implicit-feedback ALS on the last --days of events (default ML_ALS_TRAIN_DAYS), "
        "gate it on a time split against the active version (or popularity), register it, "
        "promote it when the gate passed (unless --no-promote) and, when it is active, "
        "precompute every user's candidates and every item's neighbours into Redis. Prints "
        "the gate line and timings."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=None, help="Training window in days.")
        parser.add_argument(
            "--no-promote", action="store_true", help="Register only; never promote."
        )

    def handle(self, *args: object, days: int | None, no_promote: bool, **options: object) -> None:
        if days is not None and days < 1:
            raise CommandError("--days must be at least 1")
        started = time.perf_counter()
        try:
            result = train_als(
                days=days, promote=False if no_promote else None, out=self.stdout.write
            )
        except Busy as exc:
            raise CommandError("another ALS training holds the lock; try later") from exc
        self.stdout.write(f"done in {time.perf_counter() - started:.1f} s: {result.message}")
