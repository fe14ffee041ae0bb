"""experience_app tasks."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from celery import shared_task
from django.contrib.auth import get_user_model
from django.db import transaction

from experience_app.models import ServedFeed
from inbo import keys
from inbo import redis as inbo_redis

logger = logging.getLogger(__name__)

FLUSH_BATCH = 1000


@shared_task(
    name="inbo.experience.flush_served",
    ignore_result=True,
    acks_late=True,  # idempotent: rows are keyed by request_id and inserted with ON CONFLICT
    soft_time_limit=60,
    time_limit=90,
)
def flush_served(max_batches: int = 20) -> int:
    """Move served-feed records from the Redis buffer to PostgreSQL, in batches.

    Records are read, inserted (duplicates ignored), and only then trimmed from the buffer,
    under a lock, so a crash in between re-inserts nothing twice and loses nothing.
    """
    client = inbo_redis.state()
    lock = client.lock(keys.served_flush_lock(), timeout=120, blocking=False)
    if not lock.acquire(blocking=False):
        return 0
    moved = 0
    try:
        for _ in range(max_batches):
            raw = client.lrange(keys.served_buffer(), 0, FLUSH_BATCH - 1)
            if not raw:
                break
            rows = []
            for blob in raw:
                record = json.loads(blob)
                rows.append(
                    ServedFeed(
                        request_id=record["request_id"],
                        user_id=record["user_id"],
                        served_at=datetime.fromisoformat(record["served_at"]),
                        degraded=record["degraded"],
                        items=record["items"],
                    )
                )
            # A user deleted since being served takes their records along.
            users = set(
                get_user_model()
                .objects.filter(id__in={r.user_id for r in rows})
                .values_list("id", flat=True)
            )
            with transaction.atomic():
                ServedFeed.objects.bulk_create(
                    [r for r in rows if r.user_id in users], ignore_conflicts=True
                )
            client.ltrim(keys.served_buffer(), len(raw), -1)
            moved += len(raw)
    finally:
        lock.release()
    if moved:
        logger.info("experience.served_flushed count=%d", moved)
    return moved
