"""Redis clients per role, each with short timeouts so a slow Redis degrades, not hangs.

The broker database belongs to Celery and the cache database to Django's cache framework;
application state (counters, heartbeats) uses :func:`state`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

import redis
from django.conf import settings

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
    return _client(settings.REDIS_STATE_URL)


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
    """Forget cached clients (tests that point the settings at another server)."""
    _default_state.cache_clear()
    state_raw.cache_clear()


@cache
def state_raw() -> redis.Redis:
    """Client for the state database that returns bytes (``DUMP``/``RESTORE`` payloads)."""
    return redis.Redis.from_url(
        settings.REDIS_STATE_URL,
        socket_timeout=max(settings.REDIS_SOCKET_TIMEOUT, 5.0),
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
    )
