"""experience_app tasks."""

from __future__ import annotations

from celery import shared_task

from experience_app.services.feed import served_log


@shared_task(
    name="inbo.experience.flush_served",
    ignore_result=True,
    acks_late=True,  # idempotent: rows are keyed by request_id and inserted with ON CONFLICT
    soft_time_limit=60,
    time_limit=90,
)
def flush_served(max_batches: int = 20) -> int:
    """Move served-feed records from the Redis buffer to PostgreSQL, in batches
    (``served_log.flush``)."""
    return served_log.flush(max_batches)
