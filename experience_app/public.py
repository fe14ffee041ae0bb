"""The experience_app facade: the only module other apps import from here."""

from __future__ import annotations

import redis

from inbo import keys
from inbo import redis as inbo_redis

__all__ = ["feed_cache_stats"]


def feed_cache_stats() -> dict[str, int] | None:
    """Home feed cache hits and misses since Redis last lost its data; None if unreachable."""
    try:
        raw = inbo_redis.state().hgetall(keys.feed_cache_stats())
    except redis.RedisError:
        return None
    return {"hit": int(raw.get("hit", 0)), "miss": int(raw.get("miss", 0))}
