"""INBO's own Prometheus metrics, all defined here (docs/OPERATIONS.md lists them).

Two kinds:

- **Observed in the process** that does the work (histograms and counters below): feed
  latency and interactions in the web processes (``monitoring.middleware``), Celery task runs,
  failures and durations in the worker processes (``monitoring.worker``). With
  ``PROMETHEUS_MULTIPROC_DIR`` set, every process of a group (web server workers, prefork
  children) writes its samples there and one exporter sums them
  ([ADR 0011](../docs/adr/0011-metrics-multiprocess-per-process-group.md)).
- **Read at scrape time** by :class:`InboCollector` from PostgreSQL and Redis, so every web
  process exports the same true values: feature-store figures, the feed cache, readiness
  checks, workers, beat, queues and the search health report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from experience_app import public as experience
from experiments_app import public as experiments
from features_app import public as features
from monitoring import checks

# --- observed in the process ----------------------------------------------------------
# Buckets around the home SLO (docs/OPERATIONS.md: 99 % of home responses within 300 ms).
FEED_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0)

FEED_LATENCY = Histogram(
    "inbo_feed_latency_seconds",
    "Home feed response time by section: `home` is the home endpoint (first page of every "
    "section), a section key is a further page of that section, `invalid` a rejected one.",
    ["section"],
    buckets=FEED_LATENCY_BUCKETS,
)
INTERACTIONS_RECEIVED = Counter(
    "inbo_interactions_received",
    "Valid interactions in accepted batches, by type (a retried batch counts again; "
    "inbo_interactions_total says how many were new).",
    ["type"],
)
INTERACTIONS = Counter(
    "inbo_interactions",
    "Interactions by outcome: accepted (stored and counted), duplicate (stored before), "
    "rejected (unknown or unavailable item).",
    ["outcome"],
)
THROTTLE_UNAVAILABLE = Counter(
    "inbo_throttle_unavailable",
    "Requests let through unthrottled because the throttle's cache (Redis) failed, by scope "
    "(throttles fail open: a cache outage never blocks sign-in).",
    ["scope"],
)
# Circuit breakers (inbo/breakers.py): per process, so "livemax" reports a dependency as open
# while any live process has it open.
CIRCUIT_STATE = Gauge(
    "inbo_circuit_state",
    "Circuit breaker state by dependency in this process: 0 closed, 0.5 half-open (one trial "
    "call), 1 open (calls fail at once and fall back).",
    ["dependency"],
    multiprocess_mode="livemax",
)
CIRCUIT_OPENS = Counter(
    "inbo_circuit_opens",
    "Times a circuit breaker opened, by dependency (a failed half-open trial counts again).",
    ["dependency"],
)
# Read replicas (inbo/replicas.py, ADR 0025). The gauges are per process: "livemax" reports
# the worst lag any live process saw, "livemin" a replica as down while any process finds it so.
DB_REPLICA_READS = Counter(
    "inbo_db_replica_reads",
    "Lag-tolerant reads (calls) answered by a replica, by replica.",
    ["replica"],
)
DB_REPLICA_FALLBACKS = Counter(
    "inbo_db_replica_fallbacks",
    "Lag-tolerant reads (calls) answered by the primary, by reason: transaction (inside an "
    "atomic block), recent_write (the request writes, or its user wrote within "
    "READ_YOUR_WRITES_SECONDS), write_unknown (Redis could not say), lagging (every replica "
    "behind DATABASE_REPLICA_MAX_LAG_SECONDS), down (none reachable), lost (the replica failed "
    "during the read, which ran again on the primary), conflict (the replica cancelled it).",
    ["reason"],
)
DB_REPLICA_LAG = Gauge(
    "inbo_db_replica_lag_seconds",
    "How far a replica may be behind the primary, in seconds, at this process's last check "
    "(0: it had replayed everything the primary had written).",
    ["replica"],
    multiprocess_mode="livemax",
)
DB_REPLICA_UP = Gauge(
    "inbo_db_replica_up",
    "1 when this process's last check reached the replica as a standby (lagging or not), 0 "
    "when it could not (or found it promoted).",
    ["replica"],
    multiprocess_mode="livemin",
)
CELERY_TASK_RUNS = Counter(
    "inbo_celery_task_runs",
    "Celery task runs by task and final state (SUCCESS, FAILURE, RETRY, ...).",
    ["task", "state"],
)
CELERY_TASK_FAILURES = Counter(
    "inbo_celery_task_failures",
    "Celery task failures by task and exception class.",
    ["task", "exception"],
)
CELERY_TASK_DURATION = Histogram(
    "inbo_celery_task_duration_seconds",
    "Celery task run time, by task.",
    ["task"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
# Feature store (ADR 0016): rebuilding the counters after Redis came back empty.
FEATURES_RECOVERY_SECONDS = Histogram(
    "inbo_features_recovery_seconds",
    "Time to rebuild the counters automatically after Redis came back empty.",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
FEATURES_RECOVERIES = Counter(
    "inbo_features_recoveries",
    "Automatic rebuilds of the counters after Redis came back empty.",
)

# Two-level cache of shared catalog data (inbo/cache_l1.py): hit rate per level and namespace.
CACHE_REQUESTS = Counter(
    "inbo_cache_requests",
    "Lookups of the two-level cache by level (`l1` this process's memory, `l2` Redis), "
    "namespace and result: `hit`, `miss`, or `error` (L2 unreachable: the value was loaded "
    "from PostgreSQL). A batch lookup counts each key.",
    ["level", "namespace", "result"],
)


MODEL_FALLBACKS = Counter(
    "inbo_model_fallbacks",
    "Model versions serving skipped (missing, corrupt or unreadable artifact), by kind and "
    "reason; the feed fell back to the previous version or to the linear ranking.",
    ["kind", "reason"],
)
MODEL_SERVING_VERSION = Gauge(
    "inbo_model_serving_version",
    "The model version this process loaded last, by kind.",
    ["kind"],
    multiprocess_mode="livemax",
)


EXPERIMENT_GUARDRAIL_STOPS = Counter(
    "inbo_experiment_guardrail_stops",
    "Running experiments stopped because a treatment breached a guardrail, by experiment and "
    "guardrail metric (the check runs in a worker every 15 minutes).",
    ["experiment", "metric"],
)


# Retention (ADR 0026): rows the retention job deleted from each log.
RETENTION_ROWS_DELETED = Counter(
    "inbo_retention_rows_deleted",
    "Rows the retention job deleted, by log (served, interactions, search, exposures, "
    "decisions, bandit_snapshots).",
    ["log"],
)


def observe_retention_purged(sender: Any, *, log: str, rows: int, **kwargs: Any) -> None:
    """Receiver of ``features_app.contracts.retention_purged`` (connected in apps.py)."""
    RETENTION_ROWS_DELETED.labels(log=log).inc(rows)


def observe_guardrail_stop(sender: Any, *, experiment: str, metric: str, **kwargs: Any) -> None:
    """Receiver of ``experiments_app.contracts.guardrail_stopped`` (connected in apps.py)."""
    EXPERIMENT_GUARDRAIL_STOPS.labels(experiment=experiment, metric=metric).inc()


def observe_model_fallback(sender: Any, *, kind: str, reason: str, **kwargs: Any) -> None:
    """Receiver of ``experience_app.contracts.model_fallback`` (connected in apps.py)."""
    MODEL_FALLBACKS.labels(kind=kind, reason=reason).inc()


def observe_model_loaded(sender: Any, *, kind: str, version: int, **kwargs: Any) -> None:
    """Receiver of ``experience_app.contracts.model_loaded`` (connected in apps.py)."""
    MODEL_SERVING_VERSION.labels(kind=kind).set(version)


def observe_counters_recovered(sender: Any, *, seconds: float, **kwargs: Any) -> None:
    """Receiver of ``features_app.contracts.counters_recovered`` (connected in apps.py)."""
    FEATURES_RECOVERY_SECONDS.observe(seconds)
    FEATURES_RECOVERIES.inc()


# What a worker's own exporter serves when it is not in multiprocess mode.
WORKER_METRICS = (
    FEATURES_RECOVERY_SECONDS,
    FEATURES_RECOVERIES,
    CELERY_TASK_RUNS,
    CELERY_TASK_FAILURES,
    CELERY_TASK_DURATION,
    CIRCUIT_STATE,
    CIRCUIT_OPENS,
    EXPERIMENT_GUARDRAIL_STOPS,
    RETENTION_ROWS_DELETED,
    CACHE_REQUESTS,
)


def multiprocess_dir() -> str | None:
    """The directory this process group shares its samples in, if any."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def web_registry() -> CollectorRegistry:
    """What ``/metrics`` exports: this process's registry, or the whole group's samples plus
    the scrape-time collector in multiprocess mode (custom collectors are not shared)."""
    if multiprocess_dir() is None:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(InboCollector())
    return registry


def worker_registry() -> CollectorRegistry:
    """What a Celery worker's exporter serves: every prefork child's samples, or this
    process's task metrics when the worker is not in multiprocess mode."""
    registry = CollectorRegistry()
    if multiprocess_dir() is not None:
        MultiProcessCollector(registry)
    else:
        for metric in WORKER_METRICS:
            registry.register(metric)
    return registry


# --- read at scrape time ----------------------------------------------------------------


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled(
    name: str, documentation: str, label: str, values: Iterable[tuple[str, float]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in values:
        family.add_metric([key], value)
    return family


# Redis roles (docs/OPERATIONS.md, "Redis memory"): each its own database, possibly on one
# server; the memory figures are the server's, the keys the role's database.
REDIS_ROLES = (
    ("broker", "REDIS_BROKER_URL"),
    ("cache", "REDIS_CACHE_URL"),
    ("state", "REDIS_STATE_URL"),
)


def redis_memory_metrics() -> Iterator[Metric]:
    """Memory, limit, evictions and keys of each Redis role: one INFO per role and scrape
    (a role that does not answer is left out; InboRedisDown covers it)."""
    families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {
        "used": GaugeMetricFamily(
            "inbo_redis_used_memory_bytes",
            "Memory the role's Redis server has allocated (INFO used_memory).",
            labels=["role"],
        ),
        "max": GaugeMetricFamily(
            "inbo_redis_maxmemory_bytes",
            "The role's Redis maxmemory (0: no limit, the server may take the whole machine).",
            labels=["role"],
        ),
        "ratio": GaugeMetricFamily(
            "inbo_redis_memory_used_ratio",
            "used_memory / maxmemory of the role's Redis server (absent without a limit).",
            labels=["role"],
        ),
        "evicted": CounterMetricFamily(
            "inbo_redis_evicted_keys",
            "Keys the role's Redis server evicted to stay under maxmemory (since it started).",
            labels=["role"],
        ),
        "keys": GaugeMetricFamily(
            "inbo_redis_keys", "Keys in the role's Redis database.", labels=["role"]
        ),
        "expiring": GaugeMetricFamily(
            "inbo_redis_expiring_keys",
            "Keys with a TTL in the role's Redis database.",
            labels=["role"],
        ),
        "policy": GaugeMetricFamily(
            "inbo_redis_maxmemory_policy",
            "1 for the role's Redis maxmemory-policy (what it does at maxmemory).",
            labels=["role", "policy"],
        ),
    }
    for role, setting in REDIS_ROLES:
        client = checks.probe(getattr(settings, setting))
        db = int(client.connection_pool.connection_kwargs.get("db", 0))
        try:
            pipe = client.pipeline(transaction=False)
            pipe.info("memory")
            pipe.info("stats")
            pipe.info("keyspace")
            memory, stats, keyspace = pipe.execute()
        except redis.RedisError:
            continue
        used, limit = float(memory["used_memory"]), float(memory.get("maxmemory", 0))
        families["used"].add_metric([role], used)
        families["max"].add_metric([role], limit)
        if limit > 0:
            families["ratio"].add_metric([role], used / limit)
        families["evicted"].add_metric([role], float(stats.get("evicted_keys", 0)))
        space = keyspace.get(f"db{db}", {})
        families["keys"].add_metric([role], float(space.get("keys", 0)))
        families["expiring"].add_metric([role], float(space.get("expires", 0)))
        policy = str(memory.get("maxmemory_policy", "unknown"))
        families["policy"].add_metric([role, policy], 1.0)
    yield from families.values()


class InboCollector(Collector):
    """Feature store, feed cache, readiness, Celery and search figures, read per scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from self._features()
        results = {r.name: r for r in checks.run_all()}
        yield from self._health(results)
        yield from self._celery(results)
        yield from redis_memory_metrics()
        yield from search_metrics(results["search"].data if "search" in results else {})

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected lazily: nothing to query at registration

    def _features(self) -> Iterator[Metric]:
        figures = features.health_figures()
        yield _gauge(
            "inbo_features_quarantined_counters",
            "Counter values that failed validation and are not resolved.",
            figures["quarantined_open"],
        )
        if "dirty_items" in figures:
            yield _gauge(
                "inbo_features_sync_backlog_items",
                "Items whose counters changed and wait for the next sync.",
                figures["dirty_items"],
            )
        if "sync_age_seconds" in figures:
            yield _gauge(
                "inbo_features_sync_lag_seconds",
                "Seconds since the last completed counter sync.",
                figures["sync_age_seconds"],
            )
        if "pending_batches" in figures:
            yield _gauge(
                "inbo_features_pending_batches",
                "Stored event batches not yet counted in Redis (ADR 0016).",
                figures["pending_batches"],
            )
            yield _gauge(
                "inbo_features_pending_oldest_age_seconds",
                "Age of the oldest stored batch not yet counted in Redis.",
                figures["pending_oldest_age_seconds"],
            )
        if "reconcile_drift" in figures:
            yield _gauge(
                "inbo_features_reconcile_drift",
                "Total counter drift the last reconciliation found (before repairing it).",
                figures["reconcile_drift"],
            )
        # Users per engagement segment (five fixed names: never a per-user label).
        sizes = features.segment_sizes()
        if sizes:
            yield _labelled(
                "inbo_user_segment_users",
                "Users per engagement segment at the last segmentation run.",
                "segment",
                sorted((name, float(n)) for name, n in sizes.items()),
            )
        # Retention (ADR 0026): how old each log's oldest row is against the window kept.
        try:
            kept = features.retention_figures()
        except redis.RedisError:
            kept = {}
        if kept:
            yield _labelled(
                "inbo_retention_oldest_row_age_seconds",
                "Age of each log's oldest row the retention window governs (as of the last "
                "retention run; it keeps growing when the job stops). 0: empty.",
                "log",
                sorted((log, f["oldest_age_seconds"]) for log, f in kept.items()),
            )
            yield _labelled(
                "inbo_retention_window_seconds",
                "The window each log kept at the last retention run (longer while a running "
                "experiment holds it).",
                "log",
                sorted((log, f["window_seconds"]) for log, f in kept.items()),
            )
        trials = experiments.health_figures()
        yield _gauge("inbo_experiments_running", "Experiments running now.", trials["running"])
        yield _gauge(
            "inbo_bandit_rewards_due",
            "Logged decisions past their reward window still waiting for their reward.",
            trials["rewards_due"],
        )
        yield _gauge(
            "inbo_bandit_rewards_lag_seconds",
            "How long past its reward window the oldest unrewarded decision is.",
            trials["rewards_lag_seconds"],
        )
        stats = experience.feed_cache_stats()
        if stats is not None:
            family = CounterMetricFamily(
                "inbo_feed_cache_requests",
                "Home feed requests by cache outcome.",
                labels=["outcome"],
            )
            family.add_metric(["hit"], stats["hit"])
            family.add_metric(["miss"], stats["miss"])
            yield family
        yield from _prebuild(experience.prebuild_stats())

    def _health(self, results: Mapping[str, checks.CheckResult]) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "inbo_health_check_up",
            "1 when a readiness check passes, 0 when it fails or times out (skipped: absent).",
            labels=["check", "critical"],
        )
        latency = GaugeMetricFamily(
            "inbo_health_check_latency_seconds",
            "How long a readiness check took at this scrape.",
            labels=["check"],
        )
        for result in results.values():
            if result.status == checks.SKIPPED:
                continue
            up.add_metric([result.name, str(result.critical).lower()], 1.0 if result.ok else 0.0)
            latency.add_metric([result.name], result.latency_ms / 1000)
        yield up
        yield latency
        yield _gauge(
            "inbo_ready",
            "1 when every critical readiness check passes (what /health/ready/ answers 200 to).",
            1.0 if checks.healthy(list(results.values())) else 0.0,
        )

    def _celery(self, results: Mapping[str, checks.CheckResult]) -> Iterator[Metric]:
        workers = results.get("workers")
        if workers is not None and "alive" in workers.data:
            yield _gauge(
                "inbo_celery_workers_alive",
                "Celery workers whose heartbeat is younger than WORKER_HEARTBEAT_MAX_AGE_SECONDS.",
                float(len(workers.data["alive"])),
            )
        beat = results.get("beat")
        if beat is not None and "age_seconds" in beat.data:
            yield _gauge(
                "inbo_beat_heartbeat_age_seconds",
                "Seconds since beat last sent a task (or its heartbeat task last ran).",
                float(beat.data["age_seconds"]),
            )
            now = time.time()
            sent = beat.data["last_run"]
            scheduled = sorted({e["task"] for e in settings.CELERY_BEAT_SCHEDULE.values()})
            yield _labelled(
                "inbo_beat_last_run_age_seconds",
                "Seconds since beat last sent each scheduled task (never sent: absent).",
                "task",
                ((task, max(0.0, now - sent[task])) for task in scheduled if task in sent),
            )
        broker = results.get("redis_broker")
        if broker is not None and "queues" in broker.data:
            yield _labelled(
                "inbo_celery_queue_messages",
                "Messages waiting in each Celery queue of the broker.",
                "queue",
                ((queue, float(n)) for queue, n in broker.data["queues"].items()),
            )


# --- search (issue 5): from search_app.public.health() when it exists --------------------


def _prebuild(stats: Mapping[str, float] | None) -> Iterator[Metric]:
    """Home requests by source and the prebuild runs' totals (predictive caching, OPT-002).
    The share served pre-built is ``source="prebuilt"`` over the sum of the three."""
    if stats is None:
        return
    home = CounterMetricFamily(
        "inbo_home_requests",
        "Home requests by source: `prebuilt` (the first hit on a feed a prebuild run built), "
        "`cached` (other cache hits), `built` (built on the request).",
        labels=["source"],
    )
    for source in ("prebuilt", "cached", "built"):
        home.add_metric([source], stats[f"home_{source}"])
    yield home
    yield CounterMetricFamily(
        "inbo_feed_prebuild_runs", "Prebuild runs.", value=stats["prebuild_runs"]
    )
    feeds = CounterMetricFamily(
        "inbo_feed_prebuild_feeds",
        "Readers a prebuild run reached, by outcome: `built`, `skipped` (feed cached already), "
        "`failed`.",
        labels=["outcome"],
    )
    for outcome in ("built", "skipped", "failed"):
        feeds.add_metric([outcome], stats[f"prebuild_{outcome}"])
    yield feeds
    yield CounterMetricFamily(
        "inbo_feed_prebuild_seconds",
        "Seconds prebuild runs spent building feeds (the budget used).",
        value=stats["prebuild_seconds"],
    )
    yield CounterMetricFamily(
        "inbo_feed_prebuild_budget_spent_runs",
        "Prebuild runs stopped by their budget (more readers were likely).",
        value=stats["prebuild_budget_spent"],
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _age(value: Any, now: float) -> float | None:
    """Seconds since ``value``: a datetime, a Unix time or an ISO 8601 string."""
    if isinstance(value, datetime):
        return max(0.0, now - value.timestamp())
    if isinstance(value, str):
        try:
            return max(0.0, now - datetime.fromisoformat(value).timestamp())
        except ValueError:
            return None
    number = _number(value)
    return None if number is None else max(0.0, now - number)


# Gauges taken as they are from the report: (metric, report figure, scale, documentation).
_SEARCH_GAUGES = (
    ("inbo_search_backend_up", "up", 1.0, "1 when the search backend answers."),
    ("inbo_search_backend_latency_seconds", "latency_ms", 1e-3, "Search backend round trip."),
    (
        "inbo_search_settings_drift",
        "settings_drift",
        1.0,
        "1 when the live index settings differ from those declared in code.",
    ),
    ("inbo_search_indexing_pending", "pending", 1.0, "Indexing changes waiting in the outbox."),
    (
        "inbo_search_indexing_dead_letters",
        "dead",
        1.0,
        "Indexing changes that failed every try (dead letters).",
    ),
    (
        "inbo_search_indexing_oldest_pending_age_seconds",
        "oldest_pending_age_seconds",
        1.0,
        "Age of the oldest indexing change still pending.",
    ),
    (
        "inbo_search_latency_p95_seconds",
        "search_latency_p95_ms",
        1e-3,
        "95th percentile search latency over the report's recent window.",
    ),
    (
        "inbo_search_zero_result_ratio",
        "zero_result_rate",
        1.0,
        "Share of recent searches that found nothing.",
    ),
)


def search_metrics(report: Mapping[str, Any]) -> Iterator[Metric]:
    """Search health gauges from ``search_app.public.health()``'s report; none without it.

    Figures may be flat (``up``) or grouped under ``backend`` / ``outbox``; a figure the
    report lacks is simply absent.
    """
    if not report:
        return
    for name, figure, scale, documentation in _SEARCH_GAUGES:
        value = _number(checks.search_figure(report, figure))
        if value is not None:
            yield _gauge(name, documentation, value * scale)
    drift = checks.search_figure(report, "drift")
    if isinstance(drift, Mapping):
        per_type = [(str(k), v) for k, v in drift.items() if _number(v) is not None]
    else:
        per_type = [("all", drift)] if _number(drift) is not None else []
    if per_type:
        yield _labelled(
            "inbo_search_index_drift_documents",
            "Documents in the index minus rows in the database, by document type.",
            "doc_type",
            ((doc_type, float(value)) for doc_type, value in per_type),
        )
    for figure, name, documentation in (
        ("outbox", "inbo_search_indexing_outbox_rows", "Indexing outbox rows by status."),
        ("documents", "inbo_search_index_documents", "Documents in the index, by type."),
    ):
        by_key = report.get(figure)
        if isinstance(by_key, Mapping):
            values = [(str(k), _number(v)) for k, v in by_key.items()]
            yield _labelled(
                name,
                documentation,
                "status" if figure == "outbox" else "doc_type",
                ((k, v) for k, v in values if v is not None),
            )
    age = _number(checks.search_figure(report, "last_indexed_age_seconds"))
    if age is None:
        age = _age(checks.search_figure(report, "last_indexed_at"), time.time())
    if age is not None:
        yield _gauge(
            "inbo_search_last_indexed_age_seconds",
            "Seconds since the last successful indexing.",
            age,
        )
