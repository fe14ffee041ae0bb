"""Dependency checks of the readiness endpoint (and of the health gauges in ``/metrics``).

The checks run concurrently, one thread each. Every check has its own short timeout (socket
and statement timeouts of ``HEALTH_CHECK_TIMEOUT_SECONDS``) and the whole run one deadline
(``HEALTH_DEADLINE_SECONDS``): a check that has not answered by then is reported as
``timeout`` and left to finish on its own, so readiness answers within a second even when a
dependency accepts connections and never replies.

Statuses: ``ok``, ``fail`` (the dependency answered wrongly or refused), ``timeout`` (no
answer before the deadline) and ``skipped`` (nothing to check yet, e.g. no search facade).
Only the checks named in ``HEALTH_CRITICAL_CHECKS`` decide between 200 and 503.
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from django.conf import settings
from django.db import DatabaseError, connection, connections, transaction
from kombu import Connection
from kombu.exceptions import KombuError
from redis.backoff import NoBackoff
from redis.retry import Retry

from inbo import breakers, keys

logger = logging.getLogger(__name__)

OK, FAIL, TIMEOUT, SKIPPED = "ok", "fail", "timeout", "skipped"


class CheckFailed(Exception):
    """The dependency answered, but not as a healthy one would (no live worker, beat late)."""

    def __init__(self, detail: str, data: Mapping[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.data: Mapping[str, Any] = data or {}


class Skipped(Exception):
    """There is nothing to check (yet): reported, never a failure."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a check function returns: a short human detail and figures for metrics."""

    detail: str = "ok"
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: str
    latency_ms: float
    critical: bool
    detail: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in (OK, SKIPPED)


# Errors a dependency raises when it is down, slow or refuses us: a failed check, not a bug.
_DEPENDENCY_ERRORS = (DatabaseError, redis.RedisError, KombuError, OSError)


def _timeout() -> float:
    return float(settings.HEALTH_CHECK_TIMEOUT_SECONDS)


@functools.lru_cache(maxsize=16)
def _probe_client(url: str, timeout: float) -> redis.Redis:
    # Its own client per URL: the application's clients retry (redis-py's default), which
    # would multiply the timeout; a probe must fail once, fast.
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def probe(url: str) -> redis.Redis:
    """A non-retrying Redis client with the health timeout, cached per URL."""
    return _probe_client(url, _timeout())


# --- the checks ------------------------------------------------------------------------


def check_postgres() -> Outcome:
    # SET LOCAL only holds inside a transaction: it bounds this probe, not the connection.
    with transaction.atomic(), connection.cursor() as cur:
        timeout_ms = f"{round(_timeout() * 1000)}ms"
        cur.execute("SELECT set_config('statement_timeout', %s, true)", [timeout_ms])
        cur.execute("SELECT 1")
        cur.fetchone()
    return Outcome()


def check_redis_broker() -> Outcome:
    """PING the broker database; the length of every queue comes back as figures."""
    queues = [q.name for q in settings.CELERY_TASK_QUEUES]
    pipe = probe(settings.REDIS_BROKER_URL).pipeline(transaction=False)
    pipe.ping()
    for name in queues:
        pipe.llen(name)  # kombu's Redis transport keeps a queue's messages in a list of its name
    _, *lengths = pipe.execute()
    return Outcome(data={"queues": dict(zip(queues, (int(n) for n in lengths), strict=True))})


def check_redis_cache() -> Outcome:
    probe(settings.REDIS_CACHE_URL).ping()
    return Outcome()


def check_redis_state() -> Outcome:
    probe(settings.REDIS_STATE_URL).ping()
    return Outcome()


def check_celery_broker() -> Outcome:
    """Open a broker connection the way Celery does (kombu), with the health timeout."""
    timeout = _timeout()
    conn = Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=timeout,
        transport_options={
            **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
        },
    )
    try:
        conn.ensure_connection(max_retries=0)
        return Outcome(detail=f"connected ({conn.transport_cls})")
    finally:
        conn.release()


def check_workers() -> Outcome:
    """At least one Celery worker wrote its heartbeat recently (``monitoring.worker``)."""
    now = time.time()
    beats = probe(settings.REDIS_STATE_URL).zrangebyscore(
        keys.worker_heartbeats(),
        now - settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS,
        "+inf",
        withscores=True,
    )
    alive = {str(name): now - float(at) for name, at in cast(list[tuple[str, float]], beats)}
    if not alive:
        raise CheckFailed(
            f"no worker heartbeat in the last {settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS:g}s",
            {"alive": {}},
        )
    return Outcome(detail=f"{len(alive)} live: {', '.join(sorted(alive))}", data={"alive": alive})


def check_beat(max_age: float | None = None) -> Outcome:
    """Beat sent something recently: its own publish times, or the heartbeat a worker ran.

    ``max_age`` defaults to ``BEAT_MAX_AGE_SECONDS`` (``manage.py beat_probe --max-age``).
    """
    limit = float(settings.BEAT_MAX_AGE_SECONDS if max_age is None else max_age)
    client = probe(settings.REDIS_STATE_URL)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.beat_last_run())
    pipe.get(keys.beat_heartbeat())
    last_run, heartbeat = pipe.execute()
    now = time.time()
    sent = {task: float(at) for task, at in last_run.items()}
    times = list(sent.values()) + ([float(heartbeat)] if heartbeat else [])
    if not times:
        raise CheckFailed("beat has never been seen")
    age = max(0.0, now - max(times))
    data = {"age_seconds": age, "last_run": sent}
    if age > limit:
        raise CheckFailed(f"last sign of beat {age:.0f}s ago", data)
    return Outcome(detail=f"last sign {age:.0f}s ago", data=data)


def search_health_function() -> Callable[[], Mapping[str, Any]] | None:
    """``search_app.public.health`` when search_app provides it (issue 5), else None."""
    try:
        module = importlib.import_module("search_app.public")
    except ImportError:
        return None
    fn = getattr(module, "health", None)
    return fn if callable(fn) else None


# The search report counts rows and asks the engine for its stats: probes and scrapes within
# this many seconds of each other share one report (per process).
SEARCH_REPORT_MAX_AGE_SECONDS = 10.0
_search_report: tuple[Callable[[], Mapping[str, Any]], float, dict[str, Any]] | None = None


def _search_report_for(health: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
    global _search_report
    cached = _search_report
    now = time.monotonic()
    if (
        cached is not None
        and cached[0] is health
        and now - cached[1] < SEARCH_REPORT_MAX_AGE_SECONDS
    ):
        return cached[2]
    figures = dict(health())
    _search_report = (health, now, figures)
    return figures


def check_search() -> Outcome:
    """The search backend, through search_app's own health report (skipped until it has one)."""
    health = search_health_function()
    if health is None:
        raise Skipped("search_app.public.health is not available")
    figures = _search_report_for(health)
    up = search_figure(figures, "up")
    if up is not None and not up:
        raise CheckFailed(str(figures.get("detail") or "search backend is down"), figures)
    return Outcome(detail=str(figures.get("backend") or "ok"), data=figures)


def search_figure(figures: Mapping[str, Any], name: str) -> Any:
    """A figure of the search health report, flat (``up``) or under ``backend`` / ``outbox``."""
    if name in figures:
        return figures[name]
    for group in ("backend", "outbox"):
        nested = figures.get(group)
        if isinstance(nested, Mapping) and name in nested:
            return nested[name]
        if nested is not None and not isinstance(nested, (Mapping, str)):
            value = getattr(nested, name, None)  # a contract dataclass (BackendHealth)
            if value is not None:
                return value
    return None


def check_circuit_breakers() -> Outcome:
    """This process's circuit breakers (``inbo.breakers``): an open one fails the check, so
    readiness shows which dependency is being bypassed (not critical: the fallbacks answer)."""
    described = breakers.states()
    if not described:
        raise Skipped("no circuit breaker in use yet")
    data = {name: dict(info) for name, info in described.items()}
    tripped = sorted(name for name, info in described.items() if info["state"] != breakers.CLOSED)
    if tripped:
        raise CheckFailed(", ".join(f"{name} {described[name]['state']}" for name in tripped), data)
    return Outcome(detail=f"closed: {', '.join(described)}", data=data)


CHECKS: dict[str, Callable[[], Outcome]] = {
    "postgres": check_postgres,
    "redis_broker": check_redis_broker,
    "redis_cache": check_redis_cache,
    "redis_state": check_redis_state,
    "celery_broker": check_celery_broker,
    "workers": check_workers,
    "beat": check_beat,
    "search": check_search,
    "circuit_breakers": check_circuit_breakers,
}


# --- running them -----------------------------------------------------------------------


def _run_one(name: str, fn: Callable[[], Outcome], results: dict[str, CheckResult]) -> None:
    critical = name in settings.HEALTH_CRITICAL_CHECKS
    start = time.perf_counter()
    data: Mapping[str, Any] = {}
    try:
        outcome = fn()
        status, detail, data = OK, outcome.detail, outcome.data
    except Skipped as exc:
        status, detail = SKIPPED, str(exc)
    except CheckFailed as exc:
        status, detail, data = FAIL, exc.detail, exc.data
    except _DEPENDENCY_ERRORS as exc:
        status, detail = FAIL, f"{type(exc).__name__}: {exc}"[:200]
    except Exception as exc:  # readiness must answer: the bug is logged in full, not hidden
        logger.exception("monitoring.check_crashed check=%s", name)
        status, detail = FAIL, f"{type(exc).__name__}: {exc}"[:200]
    finally:
        # Connections opened by this thread would otherwise outlive it (and hold the database).
        connections.close_all()
    elapsed = round((time.perf_counter() - start) * 1000, 2)
    results[name] = CheckResult(name, status, elapsed, critical, detail, data)


def run_all(checks: Mapping[str, Callable[[], Outcome]] | None = None) -> list[CheckResult]:
    """Run every check concurrently and return their results within the deadline."""
    checks = CHECKS if checks is None else checks
    deadline = float(settings.HEALTH_DEADLINE_SECONDS)
    results: dict[str, CheckResult] = {}
    start = time.monotonic()
    threads = [
        threading.Thread(
            target=_run_one, args=(name, fn, results), name=f"health-{name}", daemon=True
        )
        for name, fn in checks.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, start + deadline - time.monotonic()))
    out = []
    for name in checks:
        result = results.get(name)
        if result is None:
            result = CheckResult(
                name,
                TIMEOUT,
                round((time.monotonic() - start) * 1000, 2),
                name in settings.HEALTH_CRITICAL_CHECKS,
                f"no answer within {deadline:g}s",
            )
        out.append(result)
    return out


def healthy(results: list[CheckResult]) -> bool:
    """True when every critical check passed."""
    return all(r.ok for r in results if r.critical)
