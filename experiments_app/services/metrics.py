"""Metrics per variant, computed in PostgreSQL (issue 12; docs/EXPERIMENTS.md "Reading a
report").

The unit is the user; the population is the experiment's exposures (user, variant,
``exposed_at``); each user's window is ``[exposed_at, end)`` with ``end = min(now,
stopped_at)``, and their pre-period (for CUPED) the 14 days before ``exposed_at``. One SQL
query per metric family reads another app's table by the name its facade gives; each
returns per (user, day since the start) numerators and denominators (day -1: the
pre-period), so a daily look at the data is a cumulative sum here, not another query.

Definitions (the report's ``kind`` says how each is analysed):

* ``home_ctr`` (ratio): clicks on the home feed (``click`` interactions with a section) over
  home impressions (the items of every served home page). Delta method over users.
* ``dismiss_rate`` (ratio): ``dismiss`` + ``hide`` interactions (any section) over home
  impressions. Delta method.
* ``reads_per_user`` (count): client-reported ``read`` interactions per exposed user,
  users with none counted as 0 (the interactions, not the event log: the same client
  reports as the other feed metrics, with one row per read).
* ``mean_depth`` (mean): per user, the mean reading depth (progress fraction, 1.0 once
  finished) of the items whose reading started in the window; users who started none are
  left out. Depth is the item's progress now (reading progress keeps no history).
* ``session_length`` (mean): per user, the mean duration in seconds of their sessions in
  the window (events of the event log split at gaps over 30 minutes; a session lasts from
  its first to its last event and counts on the day it starts); users with no event in
  the window are left out.
* ``latency_p95`` (guardrail only): the 95th percentile of ``latency_ms`` of the home pages
  served under each variant (``ServedFeed.experiments ->> key``) to exposed users in their
  window; a per-request sample, see :func:`latency_samples`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Literal

import numpy as np
from django.db import connections
from django.utils import timezone
from numpy.typing import NDArray

from experience_app import public as experience
from experiments_app.models import Experiment, Exposure, Metric, Variant
from features_app import public as features
from inbo.replicas import read_alias
from reading_app import public as reading

MetricKind = Literal["ratio", "count", "mean"]
PRE_PERIOD = timedelta(days=14)
SESSION_GAP = timedelta(minutes=30)
DAY_SECONDS = 86400
LATENCY_P95 = "latency_p95"

KINDS: dict[str, MetricKind] = {
    Metric.HOME_CTR: "ratio",
    Metric.DISMISS_RATE: "ratio",
    Metric.READS_PER_USER: "count",
    Metric.MEAN_DEPTH: "mean",
    Metric.SESSION_LENGTH: "mean",
}
# Which way is harm: a guardrail is breached when the treatment moves the metric this way.
HIGHER_IS_WORSE = frozenset({Metric.DISMISS_RATE.value, LATENCY_P95})


@dataclass(frozen=True)
class Population:
    """The exposed users, one entry each (index = position in the arrays)."""

    user_ids: NDArray[np.int64]
    variant_ids: NDArray[np.int64]
    exposed_at: NDArray[np.float64]  # unix seconds
    start: datetime
    end: datetime
    days: int  # days since the start covered by [start, end), the last one partial

    @property
    def size(self) -> int:
        return int(self.user_ids.size)

    def look_times(self) -> list[datetime]:
        """One look per day since the start: the end of each day, the last one at ``end``."""
        return [min(self.start + timedelta(days=k), self.end) for k in range(1, self.days + 1)]


@dataclass(frozen=True)
class MetricData:
    """One metric's per-user, per-day numerators and denominators (shape users x days) and
    its pre-period totals per user."""

    key: str
    kind: MetricKind
    num: NDArray[np.float64]
    den: NDArray[np.float64]
    pre_num: NDArray[np.float64]
    pre_den: NDArray[np.float64]

    def upto(self, day: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per-user totals over days ``[0, day)`` (``day`` >= 1)."""
        if not self.num.size:
            return np.zeros(self.num.shape[0]), np.zeros(self.num.shape[0])
        return self._cum_num[:, day - 1], self._cum_den[:, day - 1]

    @cached_property
    def _cum_num(self) -> NDArray[np.float64]:
        return np.cumsum(self.num, axis=1)

    @cached_property
    def _cum_den(self) -> NDArray[np.float64]:
        return np.cumsum(self.den, axis=1)


@dataclass(frozen=True)
class LatencySamples:
    """Served home pages per variant: how many, and their latencies (ms, where logged)."""

    served: dict[int, int]
    latency_ms: dict[int, NDArray[np.float64]]


def window_end(experiment: Experiment, now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return min(now, experiment.stopped_at) if experiment.stopped_at else now


def population(experiment: Experiment, *, now: datetime | None = None) -> Population:
    """The experiment's exposures before ``end``, by user id."""
    end = window_end(experiment, now)
    start = experiment.started_at or end
    rows = list(
        Exposure.objects.filter(experiment=experiment, exposed_at__lt=end)
        .order_by("user_id")
        .values_list("user_id", "variant_id", "exposed_at")
    )
    days = max(1, int(np.ceil((end - start).total_seconds() / DAY_SECONDS)))
    return Population(
        user_ids=np.array([r[0] for r in rows], dtype=np.int64),
        variant_ids=np.array([r[1] for r in rows], dtype=np.int64),
        exposed_at=np.array([r[2].timestamp() for r in rows], dtype=np.float64),
        start=start,
        end=end,
        days=days,
    )


# The exposures (one row per user) every family joins; %(exp)s, %(start)s, %(end)s.
_POP = f"""
pop AS (
    SELECT e.user_id, e.exposed_at
    FROM {Exposure._meta.db_table} e
    WHERE e.experiment_id = %(exp)s AND e.exposed_at < %(end)s
)"""
# Day since the start of a moment in the window; -1 for the pre-period.
_DAY = "CASE WHEN {t} >= p.exposed_at THEN GREATEST(0, floor(extract(epoch FROM {t} - %(start)s) / 86400))::int ELSE -1 END"  # noqa: E501


def _interactions_sql() -> str:
    table = experience.analysis_tables()["interaction"]
    return f"""
WITH {_POP}
SELECT p.user_id, {_DAY.format(t="i.occurred_at")} AS day,
       count(*) FILTER (WHERE i.interaction_type = 'click' AND i.section <> '') AS clicks,
       count(*) FILTER (WHERE i.interaction_type IN ('dismiss', 'hide')) AS dismisses,
       count(*) FILTER (WHERE i.interaction_type = 'read') AS reads
FROM pop p
JOIN {table} i ON i.user_id = p.user_id
    AND i.occurred_at >= p.exposed_at - interval '14 days' AND i.occurred_at < %(end)s
WHERE i.occurred_at >= %(since)s
GROUP BY 1, 2"""


def _impressions_sql() -> str:
    table = experience.analysis_tables()["served_feed"]
    return f"""
WITH {_POP}
SELECT p.user_id, {_DAY.format(t="s.served_at")} AS day,
       sum(jsonb_array_length(s.items)) AS impressions
FROM pop p
JOIN {table} s ON s.user_id = p.user_id
    AND s.served_at >= p.exposed_at - interval '14 days' AND s.served_at < %(end)s
WHERE s.served_at >= %(since)s AND jsonb_typeof(s.items) = 'array'
GROUP BY 1, 2"""


def _depth_sql() -> str:
    table = reading.reading_progress_table()
    return f"""
WITH {_POP}
SELECT p.user_id, {_DAY.format(t="r.started_at")} AS day,
       sum(CASE WHEN r.completed_at IS NOT NULL THEN 1.0 ELSE r.progress END) AS depth,
       count(*) AS items
FROM pop p
JOIN {table} r ON r.user_id = p.user_id
    AND r.started_at >= p.exposed_at - interval '14 days' AND r.started_at < %(end)s
WHERE r.started_at >= %(since)s
GROUP BY 1, 2"""


def _sessions_sql() -> str:
    table = features.event_log_table()
    # Sessions are split at the exposure too (``post``): none straddles the two periods.
    return f"""
WITH {_POP},
ev AS (
    SELECT p.user_id, p.exposed_at, u.occurred_at, u.occurred_at >= p.exposed_at AS post
    FROM pop p
    JOIN {table} u ON u.user_id = p.user_id
        AND u.occurred_at >= p.exposed_at - interval '14 days' AND u.occurred_at < %(end)s
    WHERE u.occurred_at >= %(since)s AND u.occurred_at < %(end)s
),
marked AS (
    SELECT user_id, exposed_at, post, occurred_at,
           CASE WHEN occurred_at - lag(occurred_at) OVER w <= %(gap)s THEN 0 ELSE 1 END AS first
    FROM ev
    WINDOW w AS (PARTITION BY user_id, post ORDER BY occurred_at)
),
numbered AS (
    SELECT user_id, exposed_at, post, occurred_at,
           sum(first) OVER (PARTITION BY user_id, post ORDER BY occurred_at
                            ROWS UNBOUNDED PRECEDING) AS session
    FROM marked
),
sessions AS (
    SELECT user_id, exposed_at, post, min(occurred_at) AS began, max(occurred_at) AS ended
    FROM numbered GROUP BY user_id, exposed_at, post, session
)
SELECT p.user_id, {_DAY.format(t="p.began")} AS day,
       sum(extract(epoch FROM p.ended - p.began)) AS seconds, count(*) AS sessions
FROM sessions p
GROUP BY 1, 2"""


def _params(experiment: Experiment, pop: Population) -> dict[str, Any]:
    return {
        "exp": experiment.pk,
        "start": pop.start,
        "end": pop.end,
        # A constant lower bound, so the partitioned event log reads only the months asked for.
        "since": pop.start - PRE_PERIOD,
        "gap": SESSION_GAP,
    }


def _fetch(sql: str, params: dict[str, Any]) -> list[tuple]:
    # A replica inside a lag-tolerant call (the report endpoint), else the primary.
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


class _Grid:
    """Accumulates (user, day, value) rows into users x days arrays plus pre-period totals."""

    def __init__(self, pop: Population) -> None:
        self.pop = pop

    def arrays(
        self, rows: list[tuple], column: int
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        window = np.zeros((self.pop.size, self.pop.days))
        pre = np.zeros(self.pop.size)
        if not rows:
            return window, pre
        users = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        days = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
        values = np.fromiter((float(r[column] or 0) for r in rows), dtype=np.float64)
        # Population user ids are sorted: a binary search finds each row's user.
        at = np.searchsorted(self.pop.user_ids, users)
        known = (at < self.pop.size) & (
            self.pop.user_ids[np.minimum(at, self.pop.size - 1)] == users
        )
        before = known & (days < 0)
        inside = known & (days >= 0)
        np.add.at(pre, at[before], values[before])
        np.add.at(window, (at[inside], np.minimum(days[inside], self.pop.days - 1)), values[inside])
        return window, pre


def metric_data(
    experiment: Experiment, pop: Population, metrics: list[str] | None = None
) -> dict[str, MetricData]:
    """The per-user, per-day data of ``metrics`` (default: all of ``KINDS``), one query per
    family they need."""
    wanted = [m for m in (metrics or list(KINDS)) if m in KINDS]
    params = _params(experiment, pop)
    grid = _Grid(pop)
    out: dict[str, MetricData] = {}
    if pop.size == 0:
        empty = np.zeros((0, pop.days))
        return {m: MetricData(m, KINDS[m], empty, empty, np.zeros(0), np.zeros(0)) for m in wanted}
    impressions: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
    if {Metric.HOME_CTR, Metric.DISMISS_RATE} & set(wanted):
        impressions = grid.arrays(_fetch(_impressions_sql(), params), 2)
    if {Metric.HOME_CTR, Metric.DISMISS_RATE, Metric.READS_PER_USER} & set(wanted):
        rows = _fetch(_interactions_sql(), params)
        ones = (np.ones((pop.size, pop.days)), np.ones(pop.size))
        for key, column, per in (
            (Metric.HOME_CTR, 2, impressions),
            (Metric.DISMISS_RATE, 3, impressions),
            (Metric.READS_PER_USER, 4, ones),
        ):
            if key in wanted:
                num, pre = grid.arrays(rows, column)
                assert per is not None  # fetched above for the ratio metrics
                out[key] = MetricData(key, KINDS[key], num, per[0], pre, per[1])
    if Metric.MEAN_DEPTH in wanted:
        rows = _fetch(_depth_sql(), params)
        (num, pre), (den, pre_den) = grid.arrays(rows, 2), grid.arrays(rows, 3)
        out[Metric.MEAN_DEPTH] = MetricData(Metric.MEAN_DEPTH, "mean", num, den, pre, pre_den)
    if Metric.SESSION_LENGTH in wanted:
        rows = _fetch(_sessions_sql(), params)
        (num, pre), (den, pre_den) = grid.arrays(rows, 2), grid.arrays(rows, 3)
        out[Metric.SESSION_LENGTH] = MetricData(
            Metric.SESSION_LENGTH, "mean", num, den, pre, pre_den
        )
    return {m: out[m] for m in wanted}


def latency_samples(experiment: Experiment, pop: Population) -> LatencySamples:
    """Home pages served under each variant of the experiment to its exposed users, in their
    windows: the count and the latencies. Per request, not per user: a heavy user weighs
    more, as they do in the p95 that operators watch."""
    table = experience.analysis_tables()["served_feed"]
    sql = f"""
WITH {_POP}
SELECT v.id, s.latency_ms
FROM pop p
JOIN {table} s ON s.user_id = p.user_id AND s.served_at >= p.exposed_at AND s.served_at < %(end)s
JOIN {Variant._meta.db_table} v ON v.experiment_id = %(exp)s AND v.key = s.experiments ->> %(key)s
WHERE s.served_at >= %(start)s"""
    params = {**_params(experiment, pop), "key": experiment.key}
    served: dict[int, int] = {}
    values: dict[int, list[float]] = {}
    for variant_id, latency in _fetch(sql, params):
        served[variant_id] = served.get(variant_id, 0) + 1
        if latency is not None:
            values.setdefault(variant_id, []).append(float(latency))
    return LatencySamples(
        served=served,
        latency_ms={v: np.asarray(xs, dtype=np.float64) for v, xs in values.items()},
    )
