"""User segments: engagement (recency, frequency, depth) and interest clusters (FEAT-002).

One run (:func:`compute_segments`, beat ``inbo.features.compute_segments`` and
``manage.py segments``) recomputes every active user's segments from the event log:

* **engagement**, one SQL aggregate over the months asked for (no per-user query):
  ``new`` (joined less than ``SEGMENTS_NEW_DAYS`` ago), ``dormant`` (no event other than an
  impression for ``SEGMENTS_DORMANT_DAYS``), ``power`` (active on at least
  ``SEGMENTS_POWER_DAYS`` days of the last ``SEGMENTS_WINDOW_DAYS``, reading at least
  ``SEGMENTS_POWER_DEPTH`` of what they open), ``regular`` (``SEGMENTS_REGULAR_DAYS`` days
  or more), else ``casual``; the first rule that holds wins, in that order. Depth is reads,
  or events with a dwell of ``SEGMENTS_DEEP_DWELL_MS`` or more, per click, at most 1;
* **interest clusters**, k-means (``scipy.cluster.vq.kmeans2``, fixed seed) over each user's
  category-affinity vector (event weights of ``AFFINITY_WEIGHTS`` summed per item in SQL,
  mapped to categories, negatives dropped, unit length; what a reader asked to forget left
  out as reconcile leaves it out, ADR 0023); each cluster is named by its top
  categories and numbered in the order of its name, so a cluster keeps its id while its
  taste stays.

The run writes ``SegmentAssignment`` (one row per user), today's ``SegmentSize`` rows (the
history), and a copy of each user's segments in Redis (``keys.user_segment``) that the home
request reads with its cache read (:func:`decode`); PostgreSQL answers when Redis has none.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from scipy import sparse
from scipy.cluster.vq import kmeans2

from features_app import forgetting, jobs
from features_app.contracts import AFFINITY_WEIGHTS, Engagement, EventType, UserSegment
from features_app.models import SegmentAssignment, SegmentSize, UserEvent
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.public import category_names, item_facets

logger = logging.getLogger(__name__)

JOB = "segments"
SEED = 20261206  # k-means starts from the same centres on the same data
LABEL_CATEGORIES = 3  # at most this many category names in a cluster's label
WRITE_BATCH = 2000
FACETS_BATCH = 5000

Progress = Callable[[str], None]

_ACTIVE_TYPES = [t.value for t in EventType if t != EventType.IMPRESSION]

# One row per active user: (id, engagement, last active, active days, depth). Reads only
# the months of the window (``occurred_at`` bounds) through the (user, occurred_at) index.
_ENGAGEMENT = """
WITH activity AS (
    SELECT user_id,
           MAX(occurred_at) AS last_at,
           COUNT(DISTINCT (occurred_at AT TIME ZONE 'UTC')::date)
               FILTER (WHERE occurred_at >= %(window_start)s) AS active_days,
           COUNT(*) FILTER (WHERE occurred_at >= %(window_start)s
                              AND event_type = 'click') AS clicks,
           COUNT(*) FILTER (WHERE occurred_at >= %(window_start)s
                              AND (event_type = 'read'
                                   OR (jsonb_typeof(context -> 'dwell_ms') = 'number'
                                       AND (context ->> 'dwell_ms')::numeric
                                           >= %(deep_ms)s))) AS deep
    FROM {events}
    WHERE occurred_at >= %(lookback)s AND occurred_at <= %(now)s
      AND event_type = ANY(%(active_types)s)
    GROUP BY user_id
), figures AS (
    SELECT u.id AS user_id, u.date_joined, a.last_at,
           COALESCE(a.active_days, 0) AS active_days,
           LEAST(1.0, COALESCE(a.deep, 0)::float / GREATEST(COALESCE(a.clicks, 0), 1))
               AS depth
    FROM {users} u LEFT JOIN activity a ON a.user_id = u.id
    WHERE u.is_active
)
SELECT user_id,
       CASE
           WHEN date_joined > %(new_since)s THEN 'new'
           WHEN last_at IS NULL OR last_at <= %(dormant_since)s THEN 'dormant'
           WHEN active_days >= %(power_days)s AND depth >= %(power_depth)s THEN 'power'
           WHEN active_days >= %(regular_days)s THEN 'regular'
           ELSE 'casual'
       END,
       last_at, active_days, depth
FROM figures
ORDER BY user_id
"""

# Each user's summed event weight per item in the window (impressions weigh nothing), for
# the users without a forgetting rule.
_AFFINITY = """
SELECT user_id, item_id, SUM(CASE event_type {cases} ELSE 0 END) AS weight
FROM {events}
WHERE occurred_at >= %(window_start)s AND occurred_at <= %(now)s
  AND event_type = ANY(%(active_types)s)
  AND NOT (user_id = ANY(%(ruled)s::bigint[]))
GROUP BY user_id, item_id
"""

# The same for the users with a reset or a removed category, also split by ``cut``: the
# first of the user's rule times at or after the event (NULL: after all of them). Every
# event of a row then stands on the same side of each of the user's rules, so the rows are
# few and a rule asks about ``cut`` exactly as reconcile asks about each event's time. The
# times travel as one JSON object {user: [time, ...]}: each event looks up its own user's.
_AFFINITY_RULED = """
SELECT user_id, item_id, cut, SUM(CASE event_type {cases} ELSE 0 END) AS weight
FROM (
    SELECT e.user_id, e.item_id, e.event_type,
           (SELECT MIN(c.at::timestamptz)
            FROM jsonb_array_elements_text(%(cuts)s::jsonb -> (e.user_id::text)) AS c(at)
            WHERE c.at::timestamptz >= e.occurred_at) AS cut
    FROM {events} e
    WHERE e.occurred_at >= %(window_start)s AND e.occurred_at <= %(now)s
      AND e.event_type = ANY(%(active_types)s)
      AND e.user_id = ANY(%(ruled)s::bigint[])
) ruled
GROUP BY user_id, item_id, cut
"""


@dataclass(frozen=True, slots=True)
class Figures:
    """One user's engagement and the figures it came from."""

    user_id: int
    engagement: str
    last_active_at: datetime | None
    active_days: int
    depth: float


@dataclass(frozen=True, slots=True)
class Clusters:
    """Interest clusters of one run: each clustered user's cluster, and every cluster's
    label and size."""

    of_user: dict[int, int] = field(default_factory=dict)
    labels: dict[int, str] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SegmentRun:
    """What a run computed: users, their engagement counts, clustered users and clusters."""

    users: int
    engagement: dict[str, int]
    clustered: int
    clusters: dict[int, str]
    computed_at: datetime
    redis_written: bool


# --- engagement -----------------------------------------------------------------------


def engagement_figures(now: datetime) -> list[Figures]:
    """Every active user's engagement segment at ``now``, from one SQL aggregate."""
    window = timedelta(days=settings.SEGMENTS_WINDOW_DAYS)
    dormant = timedelta(days=settings.SEGMENTS_DORMANT_DAYS)
    sql = _ENGAGEMENT.format(
        events=connection.ops.quote_name(UserEvent._meta.db_table),
        users=connection.ops.quote_name(get_user_model()._meta.db_table),
    )
    params: dict[str, Any] = {
        "now": now,
        "window_start": now - window,
        "lookback": now - max(window, dormant),
        "new_since": now - timedelta(days=settings.SEGMENTS_NEW_DAYS),
        "dormant_since": now - dormant,
        "power_days": settings.SEGMENTS_POWER_DAYS,
        "power_depth": settings.SEGMENTS_POWER_DEPTH,
        "regular_days": settings.SEGMENTS_REGULAR_DAYS,
        "deep_ms": settings.SEGMENTS_DEEP_DWELL_MS,
        "active_types": _ACTIVE_TYPES,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            Figures(int(uid), str(seg), last, int(days), float(depth))
            for uid, seg, last, days, depth in cursor.fetchall()
        ]


# --- interest clusters ----------------------------------------------------------------


def _rule_cuts(forget: forgetting.Rules) -> str:
    """Each ruled user's reset and category-removal times, as JSON {user: [time, ...]}
    (providers play no part in a category vector)."""
    return json.dumps(
        {
            str(user_id): sorted(
                forgetting.at(ts).isoformat()
                for ts in {rule.everything, *rule.categories.values()} - {-math.inf}
            )
            for user_id, rule in forget.items()
        }
    )


def affinity_matrix(now: datetime) -> tuple[list[int], list[int], np.ndarray]:
    """(user ids, category ids, users x categories affinities) over the window: the event
    weights per (user, item) come from SQL, items map to their categories through
    ``reading_app``'s facets; negative taste is dropped, rows have unit length (users
    without positive taste are left out).

    What a reader asked to forget (ADR 0023) is left out as reconcile leaves it out of their
    affinity: everything before a reset, and an event's weight towards a removed category
    before the removal (its other categories keep it). The few readers with a rule are
    summed apart, split at their rule times (``_AFFINITY_RULED``)."""
    cases = " ".join(
        f"WHEN '{kind.value}' THEN {float(weight)!r}"
        for kind, weight in AFFINITY_WEIGHTS.items()
        if weight
    )
    table = connection.ops.quote_name(UserEvent._meta.db_table)
    forget = {
        u: r for u, r in forgetting.rules().items() if r.everything > -math.inf or r.categories
    }
    params: dict[str, Any] = {
        "now": now,
        "window_start": now - timedelta(days=settings.SEGMENTS_WINDOW_DAYS),
        "active_types": _ACTIVE_TYPES,
        "ruled": sorted(forget),
        "cuts": _rule_cuts(forget),
    }
    with connection.cursor() as cursor:
        cursor.execute(_AFFINITY.format(cases=cases, events=table), params)
        rows = cursor.fetchall()
        ruled: list[tuple[int, int, datetime | None, float]] = []
        if forget:
            cursor.execute(_AFFINITY_RULED.format(cases=cases, events=table), params)
            ruled = cursor.fetchall()
    if not rows and not ruled:
        return [], [], np.zeros((0, 0))
    users = np.array([r[0] for r in rows] + [r[0] for r in ruled], dtype=np.int64)
    items = np.array([r[1] for r in rows] + [r[1] for r in ruled], dtype=np.int64)
    weights = np.array([float(r[2]) for r in rows], dtype=np.float64)
    user_ids, user_index = np.unique(users, return_inverse=True)
    item_ids, item_index = np.unique(items, return_inverse=True)
    user_index, ruled_user_index = user_index[: len(rows)], user_index[len(rows) :]
    item_index = item_index[: len(rows)]
    facets: dict[int, tuple[int, ...]] = {}
    ids = [int(i) for i in item_ids]
    for start in range(0, len(ids), FACETS_BATCH):
        chunk = item_facets(ids[start : start + FACETS_BATCH])
        facets.update({i: f.category_ids for i, f in chunk.items()})
    category_ids = sorted({c for cats in facets.values() for c in cats})
    if not category_ids:
        return [], [], np.zeros((0, 0))
    column = {c: j for j, c in enumerate(category_ids)}
    pair_items = [i for i, item in enumerate(ids) for _ in facets.get(item, ())]
    pair_cats = [column[c] for item in ids for c in facets.get(item, ())]
    by_item = sparse.csr_matrix(
        (np.ones(len(pair_items)), (pair_items, pair_cats)), shape=(len(ids), len(category_ids))
    )
    by_user = sparse.csr_matrix(
        (weights, (user_index, item_index)), shape=(len(user_ids), len(ids))
    )
    matrix = np.asarray((by_user @ by_item).todense(), dtype=np.float64)
    for (user_id, item_id, cut, weight), row in zip(ruled, ruled_user_index, strict=True):
        rule, ts = forget[user_id], cut.timestamp() if cut is not None else math.inf
        for category_id in facets.get(item_id, ()):
            if not rule.category(category_id, ts):
                matrix[row, column[category_id]] += float(weight)
    np.maximum(matrix, 0.0, out=matrix)
    norms = np.linalg.norm(matrix, axis=1)
    keep = norms > 0
    matrix = matrix[keep] / norms[keep, None]
    return [int(u) for u in user_ids[keep]], category_ids, matrix


def _label(centre: np.ndarray, category_ids: Sequence[int], names: dict[int, str]) -> str:
    """The cluster's top categories in words: those weighing at least half the first."""
    order = np.argsort(-centre)[:LABEL_CATEGORIES]
    top = float(centre[order[0]]) if len(order) else 0.0
    words = [
        names.get(category_ids[j], f"category {category_ids[j]}")
        for j in order
        if top > 0 and centre[j] >= 0.5 * top
    ]
    return ", ".join(words) or "No clear topic"


def interest_clusters(now: datetime, *, k: int | None = None) -> Clusters:
    """k-means over the users' normalised category-affinity vectors (fixed seed)."""
    user_ids, category_ids, matrix = affinity_matrix(now)
    k = min(k or settings.SEGMENTS_CLUSTERS, len(user_ids))
    if k <= 0:
        return Clusters()
    if k == 1:
        assigned = np.zeros(len(user_ids), dtype=np.int64)
    else:
        with warnings.catch_warnings():
            # An empty cluster is dropped below; scipy's warning says nothing more.
            warnings.simplefilter("ignore", UserWarning)
            _, assigned = kmeans2(matrix, k, iter=25, minit="++", rng=np.random.default_rng(SEED))
    names = category_names(category_ids)
    found: list[tuple[str, int]] = []
    for cluster in sorted(set(int(c) for c in assigned)):
        members = matrix[assigned == cluster]
        found.append((_label(members.mean(axis=0), category_ids, names), cluster))
    # Numbered by label (then by raw id): the same taste keeps its number from run to run.
    renumber = {raw: new for new, (_, raw) in enumerate(sorted(found))}
    labels = {renumber[raw]: label for label, raw in found}
    of_user = {uid: renumber[int(c)] for uid, c in zip(user_ids, assigned, strict=True)}
    return Clusters(of_user, labels, dict(Counter(of_user.values())))


# --- the run --------------------------------------------------------------------------


def _encode(engagement: str, cluster: int | None, label: str, computed_at: datetime) -> str:
    return json.dumps(
        {"e": engagement, "c": cluster, "l": label, "t": round(computed_at.timestamp(), 3)},
        separators=(",", ":"),
    )


def _write_redis(assignments: Sequence[SegmentAssignment], job: jobs.Job) -> bool:
    ttl = keys.USER_SEGMENT_TTL_SECONDS
    try:
        client = inbo_redis.state()
        for start in range(0, len(assignments), WRITE_BATCH):
            pipe = client.pipeline(transaction=False)
            for a in assignments[start : start + WRITE_BATCH]:
                value = _encode(a.engagement, a.cluster, a.cluster_label, a.computed_at)
                pipe.set(keys.user_segment(a.user_id), value, ex=ttl)
            pipe.execute()
            job.renew()
        computed_at = assignments[0].computed_at.timestamp() if assignments else time.time()
        client.set(keys.segments_written(), f"{computed_at:.3f}", ex=ttl)
    except redis.RedisError as exc:
        # PostgreSQL holds the segments; the request path reads it while Redis has none.
        logger.warning("features.segments_redis_skipped error=%s", type(exc).__name__)
        return False
    return True


def _write_sizes(day: date, engagement: Counter[str], clusters: Clusters, at: datetime) -> None:
    rows = [
        SegmentSize(
            day=day,
            kind=SegmentSize.Kind.ENGAGEMENT,
            key=e.value,
            users=engagement[e.value],
            computed_at=at,
        )
        for e in Engagement
    ]
    rows += [
        SegmentSize(
            day=day,
            kind=SegmentSize.Kind.CLUSTER,
            key=str(c),
            label=clusters.labels[c],
            users=n,
            computed_at=at,
        )
        for c, n in sorted(clusters.sizes.items())
    ]
    with transaction.atomic():
        # The day's last run stands for the day (its clusters may differ from an earlier one's).
        SegmentSize.objects.filter(day=day).delete()
        SegmentSize.objects.bulk_create(rows)


def compute_segments(
    *, now: datetime | None = None, progress: Progress | None = None
) -> SegmentRun:
    """Recompute every active user's segments (module docstring); JobBusy when another run
    holds the lock. Idempotent: a rerun at the same ``now`` writes the same rows."""
    say = progress or (lambda _message: None)
    now = now or timezone.now()
    started = time.perf_counter()
    with jobs.run(JOB, ttl_seconds=settings.FEATURES_JOB_LOCK_SECONDS) as job:
        figures = engagement_figures(now)
        counts = Counter(f.engagement for f in figures)
        say(f"engagement: {len(figures)} users " + _counts(counts))
        job.renew()
        clusters = interest_clusters(now)
        say(
            f"clusters: {len(clusters.of_user)} users with a taste in {len(clusters.labels)} "
            "clusters"
            + "".join(
                f"\n  {c}: {clusters.labels[c]} ({clusters.sizes[c]})"
                for c in sorted(clusters.labels)
            )
        )
        job.renew()
        assignments = []
        for f in figures:
            cluster = clusters.of_user.get(f.user_id)
            assignments.append(
                SegmentAssignment(
                    user_id=f.user_id,
                    engagement=f.engagement,
                    cluster=cluster,
                    cluster_label=clusters.labels.get(cluster, "") if cluster is not None else "",
                    last_active_at=f.last_active_at,
                    active_days=min(f.active_days, 32767),
                    depth=round(f.depth, 4),
                    computed_at=now,
                )
            )
        with transaction.atomic():
            for start in range(0, len(assignments), WRITE_BATCH):
                SegmentAssignment.objects.bulk_create(
                    assignments[start : start + WRITE_BATCH],
                    update_conflicts=True,
                    unique_fields=["user"],
                    update_fields=[
                        "engagement",
                        "cluster",
                        "cluster_label",
                        "last_active_at",
                        "active_days",
                        "depth",
                        "computed_at",
                    ],
                )
            # Users no longer active (deactivated) keep no segment.
            SegmentAssignment.objects.exclude(computed_at=now).delete()
        _write_sizes(now.astimezone(UTC).date(), counts, clusters, now)
        say(f"written: {len(assignments)} users, sizes of {now:%Y-%m-%d}")
        job.renew()
        redis_written = _write_redis(assignments, job)
        say("redis: " + ("written" if redis_written else "unavailable, PostgreSQL serves"))
        job.status.update(
            {
                "users": len(assignments),
                "clustered": len(clusters.of_user),
                "clusters": len(clusters.labels),
                **{f"engagement_{e.value}": counts[e.value] for e in Engagement},
            }
        )
    logger.info(
        "features.segments_computed users=%d clustered=%d clusters=%d seconds=%.2f",
        len(assignments),
        len(clusters.of_user),
        len(clusters.labels),
        time.perf_counter() - started,
    )
    return SegmentRun(
        users=len(assignments),
        engagement={e.value: counts[e.value] for e in Engagement},
        clustered=len(clusters.of_user),
        clusters=dict(clusters.labels),
        computed_at=now,
        redis_written=redis_written,
    )


def _counts(counts: Counter[str]) -> str:
    return ", ".join(f"{e.value} {counts[e.value]}" for e in Engagement)


# --- serving --------------------------------------------------------------------------


def _copies_complete() -> bool:
    """Redis holds the last run's copies (``keys.segments_written``)."""
    try:
        return bool(inbo_redis.state().exists(keys.segments_written()))
    except redis.RedisError:
        return False


def decode(
    user_id: int, raw: str | bytes | None, *, copies_complete: bool | None = None
) -> UserSegment | None:
    """The user's segments from the Redis copy ``raw`` (as read with ``keys.user_segment``).
    Without one: None when Redis holds the last run's copies (``copies_complete``; checked
    with one EXISTS when not given), so the user was not segmented; else PostgreSQL (one
    query by primary key)."""
    if not raw:
        if copies_complete is None:
            copies_complete = _copies_complete()
        if copies_complete:
            return None
    else:
        try:
            data = json.loads(raw)
            cluster = data["c"]
            return UserSegment(
                user_id=user_id,
                engagement=str(data["e"]),
                cluster=int(cluster) if cluster is not None else None,
                cluster_label=str(data["l"]),
                computed_at=datetime.fromtimestamp(float(data["t"]), tz=UTC),
            )
        except (ValueError, KeyError, TypeError):
            logger.warning("features.segment_unreadable user=%s", user_id)
    return _from_db(user_id)


def _from_db(user_id: int) -> UserSegment | None:
    row = (
        SegmentAssignment.objects.filter(user_id=user_id)
        .values_list("engagement", "cluster", "cluster_label", "computed_at")
        .first()
    )
    if row is None:
        return None
    return UserSegment(user_id, row[0], row[1], row[2], row[3])


def user_segment(user_id: int) -> UserSegment | None:
    """The user's segments: one Redis round trip, PostgreSQL when Redis lost them or is away."""
    try:
        pipe = inbo_redis.state().pipeline(transaction=False)
        pipe.get(keys.user_segment(user_id))
        pipe.exists(keys.segments_written())
        raw, complete = pipe.execute()
    except redis.RedisError:
        raw, complete = None, False
    return decode(user_id, raw, copies_complete=bool(complete))


def latest_sizes(kind: str = SegmentSize.Kind.ENGAGEMENT) -> dict[str, int]:
    """Users per segment (``kind``: engagement or cluster) on the latest day computed."""
    rows = list(
        SegmentSize.objects.filter(kind=kind)
        .order_by("-day", "key")
        .values_list("day", "key", "users")[:1000]
    )
    if not rows:
        return {}
    last = rows[0][0]
    return {key: users for day, key, users in rows if day == last}
