"""Redis clients per role, each with short timeouts so a slow Redis degrades, not hangs.

The broker database belongs to Celery and the cache database to Django's cache framework
(:class:`GuardedRedisCache`); application state (counters, heartbeats) uses :func:`state`.

The state and cache clients go through a circuit breaker each (``redis_state``,
``redis_cache``; :mod:`inbo.breakers`): once Redis has timed out or refused
``REDIS_BREAKER_FAILURES`` times in a row, their calls raise :class:`RedisCircuitOpen` (a
``redis.ConnectionError``) at once, so every ``except redis.RedisError`` fallback runs without
waiting out a socket timeout per call. Offline tools keep plain clients
(:func:`use_state_client`, :func:`state_raw`): a snapshot or an evaluation should wait, not skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, cast

import redis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.client import Pipeline

from inbo.breakers import Breaker, RedisCircuitOpen

__all__ = [
    "GuardedRedis",
    "GuardedRedisCache",
    "RedisCircuitOpen",
    "reset_clients",
    "state",
    "state_breaker",
    "state_raw",
    "use_state_client",
]


def _redis_breaker(name: str) -> Breaker:
    return Breaker(
        name,
        fail_max=settings.REDIS_BREAKER_FAILURES,
        reset_timeout=settings.REDIS_BREAKER_RESET_SECONDS,
        failures=(redis.ConnectionError, redis.TimeoutError),
        open_error=RedisCircuitOpen,
    )


@cache
def state_breaker() -> Breaker:
    """The breaker of the application-state client (one per process)."""
    return _redis_breaker("redis_state")


@cache
def cache_breaker() -> Breaker:
    """The breaker of Django's cache client (one per process, shared by its threads)."""
    return _redis_breaker("redis_cache")


class GuardedPipeline(Pipeline):
    """A pipeline whose round trips (``execute``, commands sent while WATCHing) go through
    the client's breaker. Queued commands cost nothing until then."""

    breaker: Breaker | None = None

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        if self.breaker is None:
            return super().execute(raise_on_error)
        return self.breaker.call(super().execute, raise_on_error)

    def immediate_execute_command(self, *args: Any, **options: Any) -> Any:
        if self.breaker is None:
            return super().immediate_execute_command(*args, **options)
        return self.breaker.call(super().immediate_execute_command, *args, **options)


class GuardedRedis(redis.Redis):
    """``redis.Redis`` whose every command (scripts and locks included: they are commands)
    and every pipeline goes through :attr:`breaker` (none: a plain client)."""

    breaker: Breaker | None = None

    def execute_command(self, *args: Any, **options: Any) -> Any:
        if self.breaker is None:
            return super().execute_command(*args, **options)
        return self.breaker.call(super().execute_command, *args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        pipe = GuardedPipeline(
            self.connection_pool, self.response_callbacks, transaction, shard_hint
        )
        pipe.breaker = self.breaker
        return pipe


def _cache_client(**kwargs: Any) -> GuardedRedis:
    client = GuardedRedis(**kwargs)
    client.breaker = cache_breaker()
    return client


class _GuardedCacheClient(RedisCacheClient):
    def __init__(self, servers: Any, **options: Any) -> None:
        super().__init__(servers, **options)
        self._client = _cache_client
        self._clients: dict[int, GuardedRedis] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> GuardedRedis:
        # Django builds a new redis.Redis per call, and redis-py's constructor copies ~170
        # response callbacks: about as much CPU as the GET itself. A client is a thin
        # wrapper around its (thread-safe) pool, so one per pool serves every call.
        # Rebuilt when reset_clients() replaced the breaker.
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]
        client = self._clients.get(index)
        if client is None or client.breaker is not cache_breaker():
            client = self._clients[index] = _cache_client(
                connection_pool=self._get_connection_pool(write)  # type: ignore[attr-defined]
            )
        return client


class GuardedRedisCache(RedisCache):
    """Django's Redis cache whose client goes through the ``redis_cache`` breaker. Its
    callers (the throttles) already fail open on a ``redis.RedisError``."""

    def __init__(self, server: Any, params: Any) -> None:
        super().__init__(server, params)
        self._class = _GuardedCacheClient


# Set by :func:`use_state_client` for the length of a ``with`` block (one process-wide slot:
# meant for management commands such as the offline evaluation, not for request handling).
_state_override: redis.Redis | None = None


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
        health_check_interval=30,
        decode_responses=True,
    )


@cache
def _default_state() -> redis.Redis:
    client = cast(
        GuardedRedis,
        GuardedRedis.from_url(
            settings.REDIS_STATE_URL,
            socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
            socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
            health_check_interval=30,
            decode_responses=True,
        ),
    )
    client.breaker = state_breaker()
    return client


def state() -> redis.Redis:
    """Client for the application-state database (counters, heartbeats, locks)."""
    if _state_override is not None:
        return _state_override
    return _default_state()


@contextmanager
def use_state_client(url: str) -> Iterator[redis.Redis]:
    """Point :func:`state` at ``url`` inside the block; the previous client comes back after.

    Everything that reads or writes application state (the feature store's counters
    included) then works on that database, e.g. an evaluation's scratch database.
    """
    global _state_override
    previous = _state_override
    client = _client(url)
    _state_override = client
    try:
        yield client
    finally:
        _state_override = previous
        client.close()


def reset_clients() -> None:
    """Forget cached clients and their breakers (tests that point the settings at another
    server, or change the breaker settings)."""
    _default_state.cache_clear()
    state_raw.cache_clear()
    for breaker in (state_breaker, cache_breaker):
        if breaker.cache_info().currsize:
            breaker().retired = True
        breaker.cache_clear()


@cache
def state_raw() -> redis.Redis:
    """Client for the state database that returns bytes (``DUMP``/``RESTORE`` payloads)."""
    return redis.Redis.from_url(
        settings.REDIS_STATE_URL,
        socket_timeout=max(settings.REDIS_SOCKET_TIMEOUT, 5.0),
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
    )
