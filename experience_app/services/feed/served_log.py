"""The served log: every page served, each item with where it was shown, its score and the
signal values it was ranked on (``ServedFeed``), so that later models train on exactly what
was served.

Serving pushes a record to a Redis buffer in the pipeline it already sends (never waiting on
an insert); :func:`flush` moves the buffer to PostgreSQL in batches. Without Redis the row
is written at once. The record's items use the names of ``ServedFeed.items`` — ``signals``
included — from the feed's entries on; the API calls them ``explanation`` only in the page
it sends (``cache.page``).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from experience_app.models import ServedFeed
from experience_app.services.feed.build import Entry
from inbo import keys
from inbo import redis as inbo_redis

logger = logging.getLogger(__name__)

FLUSH_BATCH = 1000


def served_items(section_key: str, shown: Iterable[tuple[int, Entry]]) -> list[dict[str, Any]]:
    """What the log keeps of each shown ``(position, entry)`` of one section."""
    return [
        {
            "item_id": entry.item_id,
            "section": section_key,
            "position": position,
            "score": entry.score,
            "signals": entry.signals,
        }
        for position, entry in shown
    ]


def without(items_json: str, gone: set[int]) -> str:
    """The encoded served items less those of ``gone``."""
    items = [i for i in json.loads(items_json) if i["item_id"] not in gone]
    return json.dumps(items, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Served:
    """One served response, its items already encoded (once per feed build)."""

    request_id: uuid.UUID
    user_id: int
    served_at: datetime
    degraded: bool
    items_json: str
    ranker: str = "linear"
    # Experiments: {experiment: variant} and the build's decisions, encoded once per build.
    experiments_json: str = "{}"
    decisions_json: str = "[]"
    latency_ms: float | None = None

    def record(self) -> str:
        # Spliced, not re-encoded: the items part is encoded once per feed build.
        return (
            f'{{"request_id":"{self.request_id}","user_id":{int(self.user_id)},'
            f'"served_at":{json.dumps(self.served_at.isoformat())},'
            f'"degraded":{json.dumps(self.degraded)},"ranker":{json.dumps(self.ranker)},'
            f'"experiments":{self.experiments_json},"decisions":{self.decisions_json},'
            f'"latency_ms":{json.dumps(self.latency_ms)},'
            f'"items":{self.items_json}}}'
        )


def push(pipe: Any, served: Served) -> None:
    """Queue the buffered record on ``pipe`` (a Redis pipeline the caller executes)."""
    pipe.rpush(keys.served_buffer(), served.record())


def store(served: Served) -> None:
    """Write the record straight to PostgreSQL: Redis could not buffer it."""
    ServedFeed.objects.create(
        request_id=served.request_id,
        user_id=served.user_id,
        served_at=served.served_at,
        degraded=served.degraded,
        ranker=served.ranker,
        items=json.loads(served.items_json),
        experiments=json.loads(served.experiments_json),
        decisions=json.loads(served.decisions_json),
        latency_ms=served.latency_ms,
    )


def flush(max_batches: int = 20) -> int:
    """Move buffered records to PostgreSQL, in batches of ``FLUSH_BATCH``; how many moved.

    Records are read, inserted (duplicates ignored: rows are keyed by request_id), and only
    then trimmed from the buffer, under a lock, so a crash in between re-inserts nothing
    twice and loses nothing.
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
                        ranker=record.get("ranker", "linear"),
                        items=record["items"],
                        experiments=record.get("experiments") or {},
                        decisions=record.get("decisions") or [],
                        latency_ms=record.get("latency_ms"),
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
