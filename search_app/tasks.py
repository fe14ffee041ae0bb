"""search_app tasks: thin wrappers around services."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import shared_task

from search_app.services import indexing


@shared_task(
    name="inbo.search.index_pending",
    ignore_result=True,
    # Idempotent: rows are claimed in PostgreSQL and documents written by id, so a message
    # delivered twice only runs one more (possibly empty) pass.
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=240,
    time_limit=300,
)
def index_pending() -> dict[str, Any]:
    """Send due outbox changes to the search indexes, in batches (beat, every few seconds)."""
    run = indexing.index_pending()
    return asdict(run)
