"""experience_app tasks."""

from __future__ import annotations

import logging

from celery import shared_task

from experience_app.services import prebuild
from experience_app.services.feed import served_log
from features_app import public as features

logger = logging.getLogger(__name__)


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


@shared_task(
    name="inbo.experience.prebuild_feeds",
    ignore_result=True,
    # Not acks_late: a run lost with its worker is simply the next beat run.
    soft_time_limit=300,
    time_limit=360,
)
def prebuild_feeds() -> dict[str, int | float]:
    """Build ahead the feeds of the readers likely to open the app soon, within the run's
    budget (``services.prebuild.run``); one run at a time, its figures in the job status."""
    try:
        with features.job_run("prebuild_feeds", ttl_seconds=360) as job:
            figures = prebuild.run().figures()
            job.status.update(figures)
    except features.JobBusy:
        logger.info("experience.prebuild_busy")
        return {}
    return figures
