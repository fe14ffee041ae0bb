"""Reconciliation: recount from the event log and repair Redis and ``ItemFeature``.

``UserEvent`` is the source of truth. This job recomputes every item's lifetime counts and
its daily buckets of the last 28 days, and every user's event counts, compares them with
Redis and with ``ItemFeature``, reports the drift per counter, and (unless ``dry_run``)
repairs it: Redis by the difference, ``ItemFeature`` by the true values. Run on a quiet
system, a sync followed by a reconcile leaves no drift.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone

from features_app.contracts import EventType
from features_app.models import CounterQuarantine, ItemFeature, UserEvent
from features_app.sync import FEATURE_FIELDS, TYPE_OF, WINDOWED, WINDOWS, JobBusy
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.public import item_facets

logger = logging.getLogger(__name__)

TABLE = UserEvent._meta.db_table
_LIFETIME = f"""
SELECT item_id, event_type, count(*),
       coalesce(sum(CASE WHEN jsonb_typeof(context->'dwell_ms') = 'number'
                          AND (context->>'dwell_ms') ~ '^[0-9]{{1,18}}$'
                         THEN (context->>'dwell_ms')::bigint END), 0)
FROM {TABLE} GROUP BY item_id, event_type
"""
# Dwell counts as the ingestion path counts it: a positive JSON integer (1.5 or 3000.0 is
# not one, and casting it to bigint would fail the whole query).
_DAILY = f"""
SELECT item_id, event_type, floor(extract(epoch FROM occurred_at) / 86400)::int AS day,
       count(*)
FROM {TABLE} WHERE occurred_at >= %s GROUP BY 1, 2, 3
"""
_USERS = f"SELECT user_id, event_type, count(*) FROM {TABLE} GROUP BY 1, 2"


@dataclass
class Drift:
    items: int = 0
    total: int = 0


@dataclass
class ReconcileReport:
    dry_run: bool
    redis: dict[str, Drift] = field(default_factory=lambda: defaultdict(Drift))
    item_feature: dict[str, Drift] = field(default_factory=lambda: defaultdict(Drift))
    items_checked: int = 0
    users_checked: int = 0
    seconds: float = 0.0

    @property
    def total_drift(self) -> int:
        return sum(d.total for d in self.redis.values()) + sum(
            d.total for d in self.item_feature.values()
        )


def _note(bucket: dict[str, Drift], name: str, diff: int) -> None:
    if diff:
        bucket[name].items += 1
        bucket[name].total += abs(diff)


def reconcile(*, dry_run: bool = False, now: datetime | None = None) -> ReconcileReport:
    """Recount, compare, report, and repair unless ``dry_run``. Raises JobBusy if running."""
    now = now or timezone.now()
    client = inbo_redis.state()
    lock = client.lock(keys.features_lock("reconcile"), timeout=1800, blocking=False)
    if not lock.acquire(blocking=False):
        raise JobBusy("reconcile")
    started = time.monotonic()
    report = ReconcileReport(dry_run=dry_run)
    try:
        _reconcile(client, report, now, dry_run)
    finally:
        lock.release()
    report.seconds = round(time.monotonic() - started, 3)
    client.hset(
        keys.features_job_status("reconcile"),
        mapping={
            "finished_at": f"{time.time():.3f}",
            "drift": report.total_drift,
            "dry_run": int(dry_run),
        },
    )
    logger.info(
        "features.reconciled items=%d drift=%d dry_run=%s seconds=%.3f",
        report.items_checked,
        report.total_drift,
        dry_run,
        report.seconds,
    )
    return report


def _reconcile(client, report: ReconcileReport, now: datetime, dry_run: bool) -> None:
    today = int(now.timestamp() // 86400)
    first_day = today - 27
    truth: dict[int, dict[str, int]] = defaultdict(dict)
    daily_truth: dict[int, dict[str, int]] = defaultdict(dict)  # day -> field -> count
    user_truth: dict[int, dict[str, int]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(_LIFETIME)
        for item_id, event_type, n, dwell in cursor.fetchall():
            truth[item_id][event_type] = n
            if dwell:
                truth[item_id]["dwell_ms"] = truth[item_id].get("dwell_ms", 0) + int(dwell)
        cursor.execute(_DAILY, [datetime.fromtimestamp(first_day * 86400, tz=UTC)])
        for item_id, event_type, day, n in cursor.fetchall():
            daily_truth[day][f"{item_id}:{event_type}"] = n
        cursor.execute(_USERS)
        for user_id, event_type, n in cursor.fetchall():
            user_truth[user_id][event_type] = n

    # Items Redis knows about but the log does not (e.g. counted twice, events lost).
    redis_items = {
        int(key.rsplit(":", 2)[1])
        for key in client.scan_iter(match=keys.item_counts_pattern(), count=1000)
    }
    feature_items = set(ItemFeature.objects.values_list("item_id", flat=True))
    item_ids = sorted(set(truth) | redis_items | feature_items)
    report.items_checked = len(item_ids)
    fields = [t.value for t in EventType] + ["dwell_ms"]

    pipe = client.pipeline(transaction=False)
    for item_id in item_ids:
        pipe.hgetall(keys.item_counts(item_id))
    redis_counts = dict(zip(item_ids, pipe.execute(), strict=True))
    repair = client.pipeline(transaction=False)
    for item_id in item_ids:
        have = redis_counts[item_id]
        for name in fields:
            diff = truth[item_id].get(name, 0) - int(have.get(name, 0))
            _note(report.redis, f"item.{name}", diff)
            if diff and not dry_run:
                repair.hincrby(keys.item_counts(item_id), name, diff)

    for day in range(first_day, today + 1):
        have = {k: int(v) for k, v in client.hgetall(keys.item_daily(day)).items()}
        want = daily_truth.get(day, {})
        for name in set(have) | set(want):
            diff = want.get(name, 0) - have.get(name, 0)
            _note(report.redis, f"daily.{name.split(':', 1)[1]}", diff)
            if diff and not dry_run:
                repair.hincrby(keys.item_daily(day), name, diff)
        if want and not dry_run:
            repair.expire(keys.item_daily(day), keys.ITEM_DAILY_TTL_SECONDS)

    user_ids = sorted(user_truth)
    report.users_checked = len(user_ids)
    pipe = client.pipeline(transaction=False)
    for user_id in user_ids:
        pipe.hgetall(keys.user_counts(user_id))
    for user_id, have in zip(user_ids, pipe.execute(), strict=True):
        for name in set(have) | set(user_truth[user_id]):
            diff = user_truth[user_id].get(name, 0) - int(have.get(name, 0))
            _note(report.redis, f"user.{name}", diff)
            if diff and not dry_run:
                repair.hincrby(keys.user_counts(user_id), name, diff)
                # A key HINCRBY recreates would never expire; ingestion keeps it for a month.
                repair.expire(keys.user_counts(user_id), keys.USER_STATE_TTL_SECONDS)
    if not dry_run:
        repair.execute()

    _reconcile_item_features(truth, daily_truth, item_ids, today, now, report, dry_run)


def _reconcile_item_features(
    truth, daily_truth, item_ids, today, now, report: ReconcileReport, dry_run: bool
) -> None:
    stored = {f.item_id: f for f in ItemFeature.objects.filter(item_id__in=item_ids)}
    existing = item_facets(item_ids)
    rows = []
    for item_id in item_ids:
        if item_id not in existing:
            continue
        want: dict[str, int] = {name: truth[item_id].get(kind, 0) for name, kind in TYPE_OF.items()}
        want["dwell_ms"] = truth[item_id].get("dwell_ms", 0)
        for name, (kind, windows) in WINDOWED.items():
            for window in windows:
                days = range(today - WINDOWS[window] + 1, today + 1)
                want[f"{name}_{window}"] = sum(
                    daily_truth.get(d, {}).get(f"{item_id}:{kind}", 0) for d in days
                )
        have = stored.get(item_id)
        if have is None and not any(want.values()):
            continue
        for name, value in want.items():
            diff = value - (getattr(have, name) if have is not None else 0)
            _note(report.item_feature, name, diff)
        if have is None or any(getattr(have, n) != v for n, v in want.items()):
            rows.append(
                ItemFeature(
                    item_id=item_id,
                    **want,
                    ctr=(want["clicks"] + 1.0) / (want["impressions"] + 25.0),
                    synced_at=now,
                )
            )
    if not dry_run:
        with transaction.atomic():
            ItemFeature.objects.bulk_create(
                rows, update_conflicts=True, unique_fields=["item"], update_fields=FEATURE_FIELDS
            )
            # Redis and ItemFeature of every checked item now hold the recount: what was
            # quarantined (a Redis value) is repaired, whether or not its row changed.
            CounterQuarantine.objects.filter(item_id__in=item_ids, resolved_at__isnull=True).update(
                resolved_at=now
            )
