"""Dependency checks for the readiness endpoint, each bounded by a short timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.db import DatabaseError, connection, transaction

from inbo import keys
from inbo import redis as inbo_redis


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    critical: bool = True
    detail: str = ""


def _timed(name: str, fn: Callable[[], str], *, critical: bool = True) -> CheckResult:
    start = time.perf_counter()
    try:
        detail = fn()
        ok = True
    except (DatabaseError, redis.RedisError, OSError) as exc:
        detail, ok = f"{type(exc).__name__}: {exc}"[:200], False
    return CheckResult(name, ok, round((time.perf_counter() - start) * 1000, 2), critical, detail)


def _postgres() -> str:
    # SET LOCAL only holds inside a transaction: bound this probe, not the connection.
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL statement_timeout = 500")
        cur.execute("SELECT 1")
        cur.fetchone()
    return "ok"


def _redis_state() -> str:
    inbo_redis.state().ping()
    return "ok"


def _beat() -> str:
    last = inbo_redis.state().get(keys.beat_heartbeat())
    if last is None:
        raise OSError("no heartbeat from beat")
    return f"last heartbeat {time.time() - float(last):.0f}s ago"


def run_all() -> list[CheckResult]:
    return [
        _timed("postgres", _postgres),
        _timed("redis_state", _redis_state),
        _timed("beat", _beat, critical=False),
    ]
