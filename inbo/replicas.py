"""Read replicas: reads that may lag go to a healthy replica, everything else to the primary.

ADR 0025; docs/OPERATIONS.md "Read replicas". ``DATABASE_REPLICA_URLS`` names the replicas
(``DATABASES["replica_1"]``, ...). Nothing goes to a replica unless its caller says it may
lag, with :func:`lag_tolerant` around a function that reads and returns (a selector, a
view's handler) or :class:`LagTolerantReads` on a DRF view (its GET handlers). Inside such a
call :class:`inbo.db_router.ReplicaRouter` sends the ORM's reads to the replica chosen for
the call, and :func:`read_alias` names it for plain SQL. The primary serves the call
instead when:

- the primary has an open transaction (``atomic``): its reads must see its own writes;
- the request writes (POST, PUT, PATCH, DELETE), or its user wrote within
  ``READ_YOUR_WRITES_SECONDS`` (read-your-writes; a Redis key, ``inbo.keys``), or Redis cannot
  say whether they did;
- no replica is healthy: each one's lag is checked at most every
  ``DATABASE_REPLICA_CHECK_SECONDS`` per process, one lagging more than
  ``DATABASE_REPLICA_MAX_LAG_SECONDS`` is skipped until the next check, one that cannot be
  reached is skipped for ``DATABASE_REPLICA_RETRY_SECONDS``.

A replica lost during a call (its connection broken, or a query cancelled by a conflict with
recovery) makes the call run again, whole, on the primary: a lag-tolerant function must be a
read that can run twice. Every call that reads is counted where it read
(``inbo_db_replica_reads_total``, ``inbo_db_replica_fallbacks_total{reason}``), with each
replica's lag and state as gauges.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

import redis
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse

from inbo import keys

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

REPLICA_ALIAS_PREFIX = "replica_"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# SQLSTATE of "canceling statement due to conflict with recovery": the replica dropped a
# query its replay needed out of the way; the primary has no such conflict.
_CONFLICT_WITH_RECOVERY = "40001"


@dataclass(slots=True)
class _Scope:
    """The lag-tolerant call being run: where it reads, and whether it read at all and on
    the replica (a call answered from a cache reads nothing and is not counted)."""

    alias: str
    read: bool = False
    replica_read: bool = False


# The current lag-tolerant call (None: not in one).
_scope: ContextVar[_Scope | None] = ContextVar("inbo_replica_scope", default=None)
# The request being served (set by ReplicaRoutingMiddleware): its method and user.
_request: ContextVar[HttpRequest | None] = ContextVar("inbo_replica_request", default=None)


def replica_aliases() -> list[str]:
    """The configured replicas' connection aliases (``replica_1``, ...), in order."""
    return [alias for alias in settings.DATABASES if alias.startswith(REPLICA_ALIAS_PREFIX)]


def is_replica(alias: str | None) -> bool:
    return alias is not None and alias.startswith(REPLICA_ALIAS_PREFIX)


def read_alias() -> str:
    """The connection alias for a read here: the replica chosen for the lag-tolerant call
    being run, else the primary. For plain SQL (``connections[read_alias()].cursor()``); the
    ORM asks the router, which answers the same."""
    scope = _scope.get()
    if scope is None:
        return DEFAULT_DB_ALIAS
    scope.read = True
    if scope.alias == DEFAULT_DB_ALIAS or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    scope.replica_read = True
    return scope.alias


# --- health --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplicaHealth:
    """What the last check of a replica found, kept until ``until`` (monotonic)."""

    alias: str
    usable: bool
    reason: str  # ok | lagging | down | not_standby
    lag_seconds: float | None
    until: float


_health: dict[str, ReplicaHealth] = {}
# Monotonic time of the last check that found a replica had replayed all the primary had
# written: it is at most that old when a later check finds it behind (see _measure).
_caught_up_at: dict[str, float] = {}
_health_lock = threading.Lock()

_LAG_SQL = """
SELECT pg_is_in_recovery(),
       coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false),
       extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp())
"""


def health_reset() -> None:
    """Forget every replica's last check (tests; after a failover)."""
    with _health_lock:
        _health.clear()
        _caught_up_at.clear()


def health(alias: str) -> ReplicaHealth:
    """The replica's health, checked now if the last check has expired."""
    now = time.monotonic()
    known = _health.get(alias)
    if known is not None and now < known.until:
        return known
    found = _check(alias)
    with _health_lock:
        _health[alias] = found
    _export(found)
    return found


def mark_down(alias: str) -> None:
    """Skip ``alias`` for ``DATABASE_REPLICA_RETRY_SECONDS`` (it failed during a read)."""
    found = ReplicaHealth(
        alias=alias,
        usable=False,
        reason="down",
        lag_seconds=None,
        until=time.monotonic() + settings.DATABASE_REPLICA_RETRY_SECONDS,
    )
    with _health_lock:
        _health[alias] = found
    _export(found)


def _close_quietly(alias: str) -> None:
    with contextlib.suppress(DatabaseError):  # already broken: nothing to close cleanly
        connections[alias].close()


def _check(alias: str) -> ReplicaHealth:
    now = time.monotonic()
    primary_lsn = None
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            primary_lsn = cursor.fetchone()[0]
    except (OperationalError, InterfaceError) as exc:
        # The primary is away: the replica is measured by its replay time alone.
        logger.warning("db.replica_check_primary_unavailable error=%s", exc)
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute(_LAG_SQL, [primary_lsn])
            in_recovery, caught_up, since_replay = cursor.fetchone()
    except (OperationalError, InterfaceError) as exc:
        logger.warning("db.replica_down replica=%s error=%s", alias, exc)
        _close_quietly(alias)
        return ReplicaHealth(
            alias, False, "down", None, now + settings.DATABASE_REPLICA_RETRY_SECONDS
        )
    until = now + settings.DATABASE_REPLICA_CHECK_SECONDS
    if not in_recovery:
        # Promoted, or pointed at a primary by mistake: its data may have left ours.
        logger.warning("db.replica_not_standby replica=%s", alias)
        return ReplicaHealth(alias, False, "not_standby", None, until)
    lag = _measure(alias, now, caught_up=bool(caught_up), since_replay=since_replay)
    if lag is None or lag > settings.DATABASE_REPLICA_MAX_LAG_SECONDS:
        logger.info("db.replica_lagging replica=%s lag_seconds=%s", alias, lag)
        return ReplicaHealth(alias, False, "lagging", lag, until)
    return ReplicaHealth(alias, True, "ok", lag, until)


def _measure(alias: str, now: float, *, caught_up: bool, since_replay: Any) -> float | None:
    """How stale the replica may be, in seconds (None: unknown).

    0 when it has replayed everything the primary had written before the check (an idle
    primary too, whose last transaction may be hours old). Behind, it misses at most what
    was committed since its last replayed transaction, and since the last check that found
    it caught up: the smaller of the two (a single write after a quiet hour is not an hour
    of lag).
    """
    if caught_up:
        with _health_lock:
            _caught_up_at[alias] = now
        return 0.0
    bounds = []
    if since_replay is not None:
        bounds.append(max(0.0, float(since_replay)))
    if alias in _caught_up_at:
        bounds.append(now - _caught_up_at[alias])
    return min(bounds) if bounds else None


def _export(found: ReplicaHealth) -> None:
    from monitoring.metrics import DB_REPLICA_LAG, DB_REPLICA_UP

    DB_REPLICA_UP.labels(replica=found.alias).set(1 if found.reason in {"ok", "lagging"} else 0)
    if found.lag_seconds is not None:
        DB_REPLICA_LAG.labels(replica=found.alias).set(found.lag_seconds)


# --- read-your-writes ----------------------------------------------------------------------


def note_write(user_id: int) -> None:
    """Remember that ``user_id`` just wrote: their lag-tolerant reads use the primary for
    ``READ_YOUR_WRITES_SECONDS``. No replica configured: nothing to remember."""
    if not replica_aliases():
        return
    from inbo import redis as inbo_redis

    try:
        inbo_redis.state().set(
            keys.recent_write(user_id), "1", ex=max(1, settings.READ_YOUR_WRITES_SECONDS)
        )
    except redis.RedisError as exc:
        # Their reads find Redis failing too, and go to the primary (write_unknown).
        logger.warning("db.recent_write_unrecorded user=%s error=%s", user_id, exc)


def _writer_reason() -> str | None:
    """Why the current request must read its writes from the primary (None: it need not)."""
    request = _request.get()
    if request is None:
        return None
    if request.method not in SAFE_METHODS:
        return "recent_write"
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    if hasattr(request, "_inbo_writer_reason"):  # one Redis read per request
        return cast("str | None", request._inbo_writer_reason)
    from inbo import redis as inbo_redis

    try:
        reason = "recent_write" if inbo_redis.state().exists(keys.recent_write(user.pk)) else None
    except redis.RedisError as exc:
        logger.warning("db.recent_write_unknown user=%s error=%s", user.pk, exc)
        reason = "write_unknown"
    request._inbo_writer_reason = reason  # type: ignore[attr-defined]
    return reason


class ReplicaRoutingMiddleware:
    """Makes the request known to the routing (its method and user), and records a write by
    a signed-in user once the response is ready (read-your-writes)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not replica_aliases():
            return self.get_response(request)
        token = _request.set(request)
        try:
            response = self.get_response(request)
        finally:
            _request.reset(token)
        if request.method not in SAFE_METHODS:
            # DRF sets the user it authenticated (a token) on the Django request too.
            user = getattr(request, "user", None)
            if user is not None and user.is_authenticated:
                note_write(user.pk)
        return response


def served_by_replica(request: HttpRequest) -> bool:
    """Whether a lag-tolerant read of ``request`` was answered by a replica (a response a
    shared cache should not keep past the replica's lag)."""
    return bool(getattr(request, "_inbo_replica_read", False))


# --- lag-tolerant calls --------------------------------------------------------------------


def _choose(aliases: list[str]) -> tuple[str, str]:
    """(alias, reason) for a new lag-tolerant call: a healthy replica and "replica", or the
    primary and why."""
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS, "transaction"
    reason = _writer_reason()
    if reason is not None:
        return DEFAULT_DB_ALIAS, reason
    checked = [health(alias) for alias in aliases]
    usable = [h.alias for h in checked if h.usable]
    if usable:
        return random.choice(usable), "replica"
    return DEFAULT_DB_ALIAS, "lagging" if any(h.reason == "lagging" for h in checked) else "down"


def _lost_reason(alias: str, exc: Exception) -> str | None:
    """Why a failed read should run again on the primary: the replica's connection is gone
    ("lost") or it cancelled the query for its replay ("conflict"); None: the error is not
    the replica's (a statement timeout, a bug) and stands."""
    raw = connections[alias].connection
    if raw is None or raw.closed or getattr(raw, "broken", False):
        return "lost"
    if getattr(exc.__cause__, "sqlstate", None) == _CONFLICT_WITH_RECOVERY:
        return "conflict"
    return None


def _count(reason: str, alias: str) -> None:
    from monitoring.metrics import DB_REPLICA_FALLBACKS, DB_REPLICA_READS

    if reason == "replica":
        DB_REPLICA_READS.labels(replica=alias).inc()
    else:
        DB_REPLICA_FALLBACKS.labels(reason=reason).inc()


def _run(scope: _Scope, func: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    token = _scope.set(scope)
    try:
        return func(*args, **kwargs)
    finally:
        _scope.reset(token)


def lag_tolerant(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator: ``func``'s reads may be served by a replica up to
    ``DATABASE_REPLICA_MAX_LAG_SECONDS`` behind the primary.

    ``func`` must read and return (no writes, nothing lazy left to evaluate after it
    returns: a list, not a QuerySet), and may be run twice: when the replica is lost during
    the call, it runs again on the primary. Nested calls read where the outermost one does.
    Without replicas it is a plain call.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if _scope.get() is not None:
            return func(*args, **kwargs)
        aliases = replica_aliases()
        if not aliases:
            return func(*args, **kwargs)
        alias, reason = _choose(aliases)
        if alias == DEFAULT_DB_ALIAS:
            scope = _Scope(alias)
            result = _run(scope, func, *args, **kwargs)
            if scope.read:
                _count(reason, alias)
            return result
        scope = _Scope(alias)
        try:
            result = _run(scope, func, *args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            # Not the replica's if the call failed before reading there (the primary's).
            lost = _lost_reason(alias, exc) if scope.replica_read else None
            if lost is None:
                raise
            logger.warning("db.replica_read_failed replica=%s reason=%s error=%s", alias, lost, exc)
            if lost == "lost":
                _close_quietly(alias)
                mark_down(alias)
            _count(lost, alias)
            return _run(_Scope(DEFAULT_DB_ALIAS), func, *args, **kwargs)
        if scope.replica_read:
            _count(reason, alias)
            request = _request.get()
            if request is not None:
                request._inbo_replica_read = True  # type: ignore[attr-defined]
        elif scope.read:  # only inside a transaction it opened
            _count("transaction", alias)
        return result

    return wrapper


@contextlib.contextmanager
def on_primary() -> Iterator[None]:
    """Inside the block, lag-tolerant calls read from the primary: for reads that fill a
    cache emptied on change (a replica a second behind would store the old rows for the
    cache's whole lifetime)."""
    token = _scope.set(_Scope(DEFAULT_DB_ALIAS))
    try:
        yield
    finally:
        _scope.reset(token)


class LagTolerantReads:
    """DRF view mixin: the view's GET (and HEAD) handlers read through :func:`lag_tolerant`
    (after authentication, permissions and throttling, which read the primary)."""

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        if request.method in {"GET", "HEAD"}:
            name = request.method.lower()
            handler = getattr(self, name, None)
            if handler is not None:
                setattr(self, name, lag_tolerant(handler))
