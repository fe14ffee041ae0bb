"""Redis → ``ItemFeature``: copy validated counters of changed items to PostgreSQL.

Items whose counters changed are in a Redis set (``keys.dirty_items``); the job claims them
in batches (moved to ``keys.dirty_items_syncing`` before their counters are read, so an
event arriving meanwhile marks its item dirty again), reads their lifetime and windowed
counts, validates them against what was synced before, and upserts the valid ones
(absolute values: running it twice writes the same rows). A run that dies mid-batch
leaves its claim behind, and the next run takes it first. One run at a time, under a Redis
lock that is renewed after every batch.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from features_app import jobs, validation
from features_app.jobs import JobBusy  # noqa: F401  (re-exported: callers import it from here)
from features_app.models import CounterQuarantine, ItemFeature
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.public import item_facets

logger = logging.getLogger(__name__)

WINDOWS = {"1d": 1, "7d": 7, "28d": 28}
WINDOWED = {
    "impressions": ("impression", ("1d", "7d", "28d")),
    "clicks": ("click", ("1d", "7d", "28d")),
    "reads": ("read", ("7d",)),
    "saves": ("save", ("7d",)),
}
TYPE_OF = {
    "impressions": "impression",
    "clicks": "click",
    "reads": "read",
    "saves": "save",
    "shares": "share",
    "dismisses": "dismiss",
    "hides": "hide",
}


@dataclass
class SyncReport:
    synced: int = 0
    quarantined: int = 0
    skipped_missing: int = 0
    remaining: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def read_counters(item_ids: Sequence[int], *, now: datetime) -> dict[int, dict[str, int]]:
    """Lifetime and windowed counters of items, read from Redis in one round trip."""
    if not item_ids:
        return {}  # HMGET with no field is an error
    client = inbo_redis.state()
    today = int(now.timestamp() // 86400)
    days = range(today - keys.ITEM_DAILY_WINDOW_DAYS + 1, today + 1)
    # The days still in the v1 layout (``migrate_counters`` has not moved them yet): one
    # round trip, so that the v1 hashes are read only while they exist.
    pipe = client.pipeline(transaction=False)
    for day in days:
        pipe.exists(keys.item_daily_legacy(day))
    legacy = [day for day, found in zip(days, pipe.execute(), strict=True) if found]
    # With v1 days, one MULTI: a field moved between two reads would be missed.
    pipe = client.pipeline(transaction=bool(legacy))
    for item_id in item_ids:
        pipe.hgetall(keys.item_counts(item_id))
    # One HMGET per day and block of items (v2), plus the day's v1 hash if there is one.
    blocks: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for i in item_ids:
        for t, _ in WINDOWED.values():
            blocks[i // keys.ITEM_DAILY_BLOCK_ITEMS].append((i, t))
    reads: list[tuple[int, list[tuple[int, str]]]] = []  # (age in days, the fields' items)
    every = [pair for pairs in blocks.values() for pair in pairs]
    for day in days:
        for pairs in blocks.values():
            pipe.hmget(keys.item_daily(day, pairs[0][0]), [f"{i}:{t}" for i, t in pairs])
            reads.append((today - day, pairs))
    for day in legacy:
        pipe.hmget(keys.item_daily_legacy(day), [f"{i}:{t}" for i, t in every])
        reads.append((today - day, every))
    replies = pipe.execute()
    lifetime, daily = replies[: len(item_ids)], replies[len(item_ids) :]
    result: dict[int, dict[str, int]] = {}
    for item_id, raw in zip(item_ids, lifetime, strict=True):
        counts = {name: int(raw.get(kind, 0)) for name, kind in TYPE_OF.items()}
        counts["dwell_ms"] = int(raw.get("dwell_ms", 0))
        result[item_id] = counts
    for (age, pairs), values in zip(reads, daily, strict=True):
        for (item_id, event_type), value in zip(pairs, values, strict=True):
            if not value:
                continue
            name = next(n for n, (t, _) in WINDOWED.items() if t == event_type)
            for window in WINDOWED[name][1]:
                if age < WINDOWS[window]:
                    key = f"{name}_{window}"
                    result[item_id][key] = result[item_id].get(key, 0) + int(value)
    return result


def _feature(item_id: int, counts: dict[str, int], now: datetime) -> ItemFeature:
    windowed = {
        f"{name}_{w}": counts.get(f"{name}_{w}", 0)
        for name, (_, windows) in WINDOWED.items()
        for w in windows
    }
    return ItemFeature(
        item_id=item_id,
        **{name: counts[name] for name in TYPE_OF},
        dwell_ms=counts["dwell_ms"],
        **windowed,
        ctr=(counts["clicks"] + 1.0) / (counts["impressions"] + 25.0),
        synced_at=now,
    )


FEATURE_FIELDS = [f.name for f in ItemFeature._meta.concrete_fields if f.name != "item"]


def sync_batch(item_ids: Sequence[int], *, now: datetime, report: SyncReport) -> None:
    """Validate and upsert one batch of items (absolute values: idempotent)."""
    existing = item_facets(item_ids)
    missing = [i for i in item_ids if i not in existing]
    report.skipped_missing += len(missing)
    present = [i for i in item_ids if i in existing]
    counters = read_counters(present, now=now)
    previous = {
        f.item_id: {name: getattr(f, name) for name in TYPE_OF}
        for f in ItemFeature.objects.filter(item_id__in=present)
    }
    valid: list[ItemFeature] = []
    quarantine: list[CounterQuarantine] = []
    for item_id in present:
        problems = validation.validate(counters[item_id], previous.get(item_id))
        if problems:
            quarantine.extend(
                CounterQuarantine(
                    item_id=item_id,
                    counter=p.counter,
                    value=p.value,
                    previous=p.previous,
                    reason=p.reason,
                    detail=p.detail,
                )
                for p in problems
            )
            report.problems.extend(f"item {item_id}: {p.counter} {p.reason}" for p in problems)
        else:
            valid.append(_feature(item_id, counters[item_id], now))
    open_keys = set(
        CounterQuarantine.objects.filter(
            item_id__in=[q.item_id for q in quarantine], resolved_at__isnull=True
        ).values_list("item_id", "counter", "value")
    )
    fresh = [q for q in quarantine if (q.item_id, q.counter, q.value) not in open_keys]
    with transaction.atomic():
        ItemFeature.objects.bulk_create(
            valid,
            update_conflicts=True,
            unique_fields=["item"],
            update_fields=FEATURE_FIELDS,
        )
        CounterQuarantine.objects.bulk_create(fresh)
    report.synced += len(valid)
    report.quarantined += len({q.item_id for q in quarantine})


def _claim(client: redis.Redis, batch_size: int) -> list[int]:
    """The next batch: what a dead run left claimed first, else ids moved out of the dirty
    set (an event counted from now on marks its item dirty again)."""
    raw = client.srandmember(keys.dirty_items_syncing(), batch_size)
    if not raw:
        raw = client.srandmember(keys.dirty_items(), batch_size)
        if not raw:
            return []
        pipe = client.pipeline(transaction=True)
        pipe.sadd(keys.dirty_items_syncing(), *raw)
        pipe.srem(keys.dirty_items(), *raw)
        pipe.execute()
    return sorted(int(x) for x in raw)


def sync_features(
    *,
    batch_size: int = 500,
    max_batches: int | None = None,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> SyncReport:
    """Sync every dirty item (or ``max_batches`` batches). Raises JobBusy if one is running."""
    client = inbo_redis.state()
    started = time.monotonic()
    report = SyncReport()
    # Refused while a restore or reconcile holds the counters still: a half-rebuilt state
    # would look like counters going backwards (false "decreased" quarantines).
    with jobs.run(
        "sync", ttl_seconds=settings.FEATURES_SYNC_LOCK_SECONDS, blocked_by_pause=True
    ) as job:
        batches = 0
        while max_batches is None or batches < max_batches:
            if jobs.counting_paused(client):
                break  # a restore began meanwhile: stop; its own run picks the rest up
            ids = _claim(client, batch_size)
            if not ids:
                break
            sync_batch(ids, now=now or timezone.now(), report=report)
            # Only after the rows are committed: a crash before this line re-syncs the batch.
            client.srem(keys.dirty_items_syncing(), *ids)
            job.renew()  # a lost lock (JobLost) ends this run: another has it
            batches += 1
            if progress:
                progress(len(ids))
        pipe = client.pipeline(transaction=False)
        pipe.scard(keys.dirty_items())
        pipe.scard(keys.dirty_items_syncing())
        report.remaining = sum(pipe.execute())
        report.seconds = round(time.monotonic() - started, 3)
        job.status.update(
            synced=report.synced, quarantined=report.quarantined, remaining=report.remaining
        )
    logger.info(
        "features.synced items=%d quarantined=%d remaining=%d seconds=%.3f",
        report.synced,
        report.quarantined,
        report.remaining,
        report.seconds,
    )
    return report
