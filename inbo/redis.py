"""Redis clients per role, each with short timeouts so a slow Redis degrades, not hangs.

The broker database belongs to Celery and the cache database to Django's cache framework;
application state (counters, heartbeats) uses :func:`state`.
"""

from __future__ import annotations

from functools import cache

import redis
from django.conf import settings


@cache
def state() -> redis.Redis:
    """Client for the application-state database (counters, heartbeats, locks)."""
    return redis.Redis.from_url(
        settings.REDIS_STATE_URL,
        socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
        socket_connect_timeout=settings.REDIS_SOCKET_TIMEOUT,
        health_check_interval=30,
        decode_responses=True,
    )


def reset_clients() -> None:
    """Forget cached clients (tests that point the settings at another server)."""
    state.cache_clear()
