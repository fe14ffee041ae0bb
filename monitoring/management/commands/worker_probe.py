"""``manage.py worker_probe``: is the Celery worker on this host alive? (a health check)."""

from __future__ import annotations

import socket
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from kombu.exceptions import KombuError
from redis import RedisError

from inbo.celery import app


def default_node() -> str:
    """The node name a worker started without ``-n`` takes: ``celery@<hostname>``."""
    return f"celery@{socket.gethostname()}"


class Command(BaseCommand):
    help = (
        "Ping one Celery worker through the broker and wait at most --timeout seconds for its "
        "answer: exit 0 when it answers, 1 when it does not or the broker is unreachable. "
        "The worker's docker health check; readiness counts heartbeats of all workers instead."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--node",
            default=None,
            help="Worker node name to ping (default: celery@<this hostname>, the worker's own).",
        )
        parser.add_argument(
            "--timeout", type=float, default=5.0, help="Seconds to wait for the answer."
        )

    def handle(self, *args: Any, node: str | None, timeout: float, **options: Any) -> None:
        node = node or default_node()
        try:
            with app.connection_for_write() as conn:
                # One try: a probe must fail within its timeout, not retry the broker forever.
                conn.ensure_connection(max_retries=1, timeout=timeout)
                replies = app.control.ping(destination=[node], timeout=timeout, connection=conn)
        except (KombuError, RedisError, OSError) as exc:
            raise CommandError(f"broker unreachable: {type(exc).__name__}: {exc}") from exc
        answered = any(node in reply for reply in replies or [])
        if not answered:
            raise CommandError(f"worker {node} did not answer a ping within {timeout:g}s")
        self.stdout.write(f"worker {node} answered")
