"""The experience_app facade: the only module other apps import from here."""

from __future__ import annotations

import redis

from experience_app.datasets import demo as demo_plan
from experience_app.datasets import demo_words
from experience_app.learned import FEATURES, feature_vector
from experience_app.ranking import Candidate, Scored, UserContext, Weights, rank
from experience_app.services.progress_bars import bar
from experience_app.services.users import users_ensure
from inbo import keys
from inbo import redis as inbo_redis

# The ranking function and its inputs are part of the facade: the offline replay
# (ml_app.evaluation) ranks with exactly what the feed ranks with. ``users_ensure`` and
# ``bar`` serve the offline loaders (ml_app), which create accounts and show progress
# as the demo world does. ``demo_plan`` and ``demo_words`` (pure generators of the demo
# world) let bench/ build its large world from the same taxonomy and vocabulary.
__all__ = [
    "FEATURES",
    "Candidate",
    "Scored",
    "UserContext",
    "Weights",
    "bar",
    "demo_plan",
    "demo_words",
    "feature_vector",
    "feed_cache_stats",
    "rank",
    "users_ensure",
]


def feed_cache_stats() -> dict[str, int] | None:
    """Home feed cache hits and misses since Redis last lost its data; None if unreachable."""
    try:
        raw = inbo_redis.state().hgetall(keys.feed_cache_stats())
    except redis.RedisError:
        return None
    return {"hit": int(raw.get("hit", 0)), "miss": int(raw.get("miss", 0))}
