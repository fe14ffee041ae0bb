"""Monitoring tasks."""

from __future__ import annotations

import time

from celery import shared_task

from inbo import keys
from inbo import redis as inbo_redis


@shared_task(
    name="inbo.monitoring.beat_heartbeat", ignore_result=True, soft_time_limit=10, time_limit=20
)
def beat_heartbeat() -> None:
    """Record that beat and a worker are both alive: readiness reads this timestamp."""
    inbo_redis.state().set(
        keys.beat_heartbeat(), f"{time.time():.3f}", ex=keys.BEAT_HEARTBEAT_TTL_SECONDS
    )
