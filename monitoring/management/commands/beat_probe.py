"""``manage.py beat_probe``: has Celery beat sent a task recently? (a health check)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from redis import RedisError

from monitoring import checks


class Command(BaseCommand):
    help = (
        "Exit 0 when beat's last sign of life (the last task it sent, or the heartbeat task a "
        "worker ran) is younger than --max-age seconds (default BEAT_MAX_AGE_SECONDS), 1 when "
        "it is older, has never been seen or Redis does not answer. Beat's docker health check."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--max-age",
            type=float,
            default=None,
            help="Largest healthy age in seconds (default: BEAT_MAX_AGE_SECONDS).",
        )

    def handle(self, *args: Any, max_age: float | None, **options: Any) -> None:
        limit = float(settings.BEAT_MAX_AGE_SECONDS if max_age is None else max_age)
        try:
            outcome = checks.check_beat(max_age=limit)
        except checks.CheckFailed as exc:
            raise CommandError(f"beat: {exc.detail} (limit {limit:g}s)") from exc
        except (RedisError, OSError) as exc:
            raise CommandError(f"state Redis unreachable: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(f"beat: {outcome.detail}")
