"""Reconciliation: recount from the event log at a cut and repair Redis and ``ItemFeature``.

``UserEvent`` is the source of truth. The job pauses counting (ingestion goes on storing;
its batches stay pending and are counted after the job), reads the cut the counters
reflect (``cut.read``: the log's watermark, less the events still pending) and every
counter key, then rebuilds in memory what the counters of exactly that cut must be — every
family: lifetime and daily counts, user counts, decayed clicks and expected clicks,
affinity, seen memory and first-seen times (``cut.rebuild``, by the very code ingestion
counts with). Counting resumes once the state and the cut are read; the recount then
runs, and unless ``dry_run`` the job adds each difference to Redis (seen memory and
first-seen times: set only if unchanged since the cut) and writes ``ItemFeature`` from
the same recount. Events arriving during the
job are neither subtracted nor counted twice (ADR 0016).

Keys Redis rightly let expire are not recreated: day buckets older than 28 days, decayed
epochs before the previous one and the keys of users idle for ``FEATURES_USER_IDLE_DAYS``
(recounted whole once the user is active again). The rebuild holds the whole counter state
in memory (about the size of the Redis data set).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from features_app import baseline, counters, cut, forgetting, jobs
from features_app.jobs import JobBusy  # callers catch it from here too
from features_app.models import CounterQuarantine, ItemFeature
from features_app.sync import FEATURE_FIELDS, TYPE_OF, WINDOWED, WINDOWS
from inbo import redis as inbo_redis
from reading_app.public import item_facets

logger = logging.getLogger(__name__)


@dataclass
class Drift:
    items: int = 0
    total: float = 0


@dataclass
class ReconcileReport:
    dry_run: bool
    redis: dict[str, Drift] = field(default_factory=lambda: defaultdict(Drift))
    item_feature: dict[str, Drift] = field(default_factory=lambda: defaultdict(Drift))
    items_checked: int = 0
    users_checked: int = 0
    keys_repaired: int = 0
    watermark: int = 0
    seconds: float = 0.0

    @property
    def total_drift(self) -> float:
        return sum(d.total for d in self.redis.values()) + sum(
            d.total for d in self.item_feature.values()
        )

    def family_drift(self) -> dict[str, float]:
        """Drift per counter family (``item``, ``daily``, ``user``, ``decayed_clicks``...)."""
        totals: dict[str, float] = defaultdict(float)
        for name, d in self.redis.items():
            totals[name.split(".", 1)[0]] += d.total
        return dict(totals)


def _note(bucket: dict[str, Drift], name: str, diff: float) -> None:
    if diff:
        bucket[name].items += 1
        bucket[name].total += abs(diff)


def reconcile(*, dry_run: bool = False, now: datetime | None = None) -> ReconcileReport:
    """Recount at a cut, compare, report, and repair unless ``dry_run``. Raises JobBusy if
    it runs already, or while another job (snapshot, restore) pauses counting."""
    now = now or timezone.now()
    client = inbo_redis.state()
    started = time.monotonic()
    report = ReconcileReport(dry_run=dry_run)
    with jobs.run(
        "reconcile", ttl_seconds=settings.FEATURES_JOB_LOCK_SECONDS, pause_counting=True
    ) as job:
        # What readers asked to forget, read on both sides of the state: a removal or a
        # reset in between zeroed keys that the state may or may not show, so those
        # readers' own keys are left to the next run (see ``features_app.forgetting``).
        forget = forgetting.rules()
        at = cut.read(client)
        report.watermark = at.watermark
        have = cut.read_redis(client)
        # The state and its cut are read: counting may go on while the log is recounted,
        # since the repair adds differences (and compares before it sets, see _repair).
        job.resume_counting()
        forget_after = forgetting.rules()
        moved = {u for u in set(forget) | set(forget_after) if forget.get(u) != forget_after.get(u)}
        # Detached months count through their stored baselines (ADR 0026); a detach that
        # commits while the log is read would leave its month counted by neither side.
        detached = baseline.detached_tables()
        base = baseline.seed(cut.Model(), forget=forget_after)
        model = cut.rebuild(at, forget=forget_after, base=base)
        if baseline.detached_tables() != detached:
            raise JobBusy("reconcile (a month was detached meanwhile)")
        job.renew()
        _skip_users(model, have, moved)
        _reconcile(client, report, model, have, now, dry_run)
        report.seconds = round(time.monotonic() - started, 3)
        job.status.update(
            drift=f"{report.total_drift:g}", dry_run=int(dry_run), watermark=at.watermark
        )
    logger.info(
        "features.reconciled items=%d drift=%g dry_run=%s seconds=%.3f",
        report.items_checked,
        report.total_drift,
        dry_run,
        report.seconds,
    )
    return report


_USER_FAMILIES = ("user_counts", "user_affinity", "user_seen")


def _skip_users(model: cut.Model, have: dict[str, dict[str, float]], users: set[int]) -> None:
    """Leave the per-user keys of ``users`` out of this run (neither compared nor repaired)."""
    if not users:
        return
    for state in (model.values, have):
        for key in [k for k in state if cut.family(k) in _USER_FAMILIES]:
            if int(key.split(":")[3]) in users:
                del state[key]


def _keep(today: int, epoch: int, expire_at: dict[str, int] | None = None, now: float = 0.0):
    def keep(key: str) -> bool:
        fam = cut.family(key)
        ident = key.split(":")[3]
        if expire_at and expire_at.get(key, now + 1) <= now:
            return False  # Redis let it expire (a day out of every window, an idle user)
        if fam == "item_daily":
            return int(ident.split(".")[0]) >= today - 27
        if fam in ("decayed_clicks", "decayed_expected"):
            return int(ident.rsplit("e", 1)[1]) >= epoch - 1
        return True

    return keep


def _reconcile(
    client: redis.Redis,
    report: ReconcileReport,
    model: cut.Model,
    have: dict[str, dict[str, float]],
    now: datetime,
    dry_run: bool,
) -> None:
    today = int(now.timestamp() // 86400)
    decay = counters.click_decay()
    keep = _keep(today, decay.epoch(now.timestamp()), model.expire_at, now.timestamp())
    want = model.values
    off: set[str] = set()
    for key in set(want) | set(have):
        if not keep(key):
            continue
        fam = cut.family(key) or ""
        w, h = want.get(key, {}), have.get(key, {})
        for name in set(w) | set(h):
            a, b = float(w.get(name, 0)), float(h.get(name, 0))
            if cut.same(a, b):
                continue
            off.add(key)
            diff = a - b if fam not in cut._INT_FAMILIES else int(a) - int(b)
            if fam == "item_counts":
                _note(report.redis, f"item.{name}", diff)
            elif fam == "item_daily":
                _note(report.redis, f"daily.{name.split(':', 1)[1]}", diff)
            elif fam == "user_counts":
                _note(report.redis, f"user.{name}", diff)
            else:
                _note(report.redis, cut.FAMILIES[fam], diff)

    item_ids = {
        int(k.split(":")[3]) for k in set(want) | set(have) if cut.family(k) == "item_counts"
    }
    feature_items = set(ItemFeature.objects.values_list("item_id", flat=True))
    all_items = sorted(item_ids | feature_items)
    report.items_checked = len(all_items)
    report.users_checked = sum(1 for k in want if cut.family(k) == "user_counts")
    if not dry_run and off:
        _repair(client, sorted(off), want, have, model.ttl)
        report.keys_repaired = len(off)

    truth: dict[int, dict[str, int]] = defaultdict(dict)
    daily_truth: dict[int, dict[str, int]] = defaultdict(dict)
    for key, values in want.items():
        kind = cut.family(key)
        ident = key.split(":")[3]
        if kind == "item_counts":
            truth[int(ident)] = {k: int(v) for k, v in values.items()}
        elif kind == "item_daily":  # a block of items' day: field <item_id>:<type>
            daily_truth[int(ident.split(".")[0])].update({k: int(v) for k, v in values.items()})
    _reconcile_item_features(truth, daily_truth, all_items, today, now, report, dry_run)


# Seen memory and first-seen times are not sums: set a field to its recount only if it still
# holds what the cut read (else a batch counted since changed it; the next run looks again).
_SET_IF_UNCHANGED = """
for i = 1, #ARGV, 3 do
    local current = redis.call('HGET', KEYS[1], ARGV[i])
    local expected, target = ARGV[i + 1], ARGV[i + 2]
    local unchanged = (current == false and expected == '')
        or (current and tonumber(current) == tonumber(expected))
    if unchanged then
        if target == '' then redis.call('HDEL', KEYS[1], ARGV[i])
        else redis.call('HSET', KEYS[1], ARGV[i], target) end
    end
end
return 0
"""


def _repair(
    client: redis.Redis,
    names: list[str],
    want: dict[str, dict[str, float]],
    have: dict[str, dict[str, float]],
    ttl: dict[str, int],
) -> None:
    """Bring each key from what the cut read to its recount, by difference, so batches
    counted since the cut (counting is no longer paused) are kept. One MULTI per chunk:
    a sync never reads a half-repaired item."""
    for start in range(0, len(names), 200):
        pipe = client.pipeline(transaction=True)
        for key in names[start : start + 200]:
            fam = cut.family(key)
            w, h = want.get(key, {}), have.get(key, {})
            fields = [f for f in set(w) | set(h) if not cut.same(w.get(f, 0), h.get(f, 0))]
            if fam in ("user_seen", "item_first_seen"):
                args: list[str] = []
                for f in fields:
                    old, new = h.get(f), w.get(f)
                    args.append(f)
                    args.append("" if old is None else _text(fam, old))
                    args.append("" if new is None else _text(fam, new))
                if args:
                    pipe.eval(_SET_IF_UNCHANGED, 1, key, *args)
            elif fam in ("decayed_clicks", "decayed_expected"):
                for f in fields:
                    pipe.zincrby(key, w.get(f, 0.0) - h.get(f, 0.0), f)
            elif fam in cut._INT_FAMILIES:
                for f in fields:
                    pipe.hincrby(key, f, int(w.get(f, 0)) - int(h.get(f, 0)))
            else:
                for f in fields:
                    pipe.hincrbyfloat(key, f, float(w.get(f, 0.0)) - float(h.get(f, 0.0)))
            if key in ttl and w:
                pipe.expire(key, ttl[key])  # a key a repair recreates expires as ingestion's
        pipe.execute()


def _text(fam: str | None, value: float) -> str:
    return f"{float(value):.3f}" if fam == "item_first_seen" else str(int(value))


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
