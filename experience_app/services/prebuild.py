"""Predictive caching (OPT-002): build the feeds of readers likely to open the app soon.

A beat task (``inbo.experience.prebuild_feeds``) runs :func:`run` every
``EXPERIENCE_PREBUILD_INTERVAL_SECONDS``. It reads the readers who opened the app within
the open profiles' TTL (the most recent ``EXPERIENCE_PREBUILD_MAX_CANDIDATES``), scores
each with :func:`experience_app.open_times.likelihood` (opens in the next
``EXPERIENCE_PREBUILD_LOOKAHEAD_MINUTES``), and walks them most likely first: a reader
whose cached feed a request would serve as it is is skipped; the others' feeds are built
by ``feed.cache.prebuild`` — the cache miss's own build, under the place and platform of
their last request — and kept ``EXPERIENCE_PREBUILD_TTL_SECONDS``, until
``EXPERIENCE_PREBUILD_BUDGET`` feeds are built or ``EXPERIENCE_PREBUILD_BUDGET_SECONDS`` of
building are spent. Readers under ``EXPERIENCE_PREBUILD_MIN_LIKELIHOOD`` get nothing,
whatever budget is left. A pre-built feed is invalidated by feedback like any cached feed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime

import redis
from django.conf import settings
from django.utils import timezone

from experience_app import open_times
from experience_app.services.feed import cache as feed_cache
from experience_app.services.feed import opens
from experience_app.time_place import Place
from inbo import keys
from inbo import redis as inbo_redis

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What one run did: readers read and likely enough, feeds built, skipped (cached
    already) and failed, build seconds spent, and whether the budget stopped it."""

    candidates: int = 0
    likely: int = 0
    built: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    budget_spent: bool = False

    def figures(self) -> dict[str, int | float]:
        return {k: (int(v) if isinstance(v, bool) else v) for k, v in asdict(self).items()}


def place_of(tag: str) -> Place | None:
    """The place of a feed's place tag (``country-region``; empty: none)."""
    country, _, region = tag.partition("-")
    return Place(country, region) if country else None


def run(
    *,
    now: datetime | None = None,
    budget: int | None = None,
    budget_seconds: float | None = None,
    lookahead_minutes: float | None = None,
    minimum: float | None = None,
    ttl: int | None = None,
) -> RunResult:
    """One prebuild run (the settings give every default; see the module docstring)."""
    now = now or timezone.now()
    budget = settings.EXPERIENCE_PREBUILD_BUDGET if budget is None else budget
    if budget_seconds is None:
        budget_seconds = settings.EXPERIENCE_PREBUILD_BUDGET_SECONDS
    if lookahead_minutes is None:
        lookahead_minutes = settings.EXPERIENCE_PREBUILD_LOOKAHEAD_MINUTES
    minimum = settings.EXPERIENCE_PREBUILD_MIN_LIKELIHOOD if minimum is None else minimum
    ttl = ttl or settings.EXPERIENCE_PREBUILD_TTL_SECONDS
    result = RunResult()
    if budget <= 0:
        return result
    users = opens.openers(now=now, limit=settings.EXPERIENCE_PREBUILD_MAX_CANDIDATES)
    profiles = opens.profiles(users)
    result.candidates = len(profiles.user_ids)
    scores = open_times.likelihood(
        profiles.counts, profiles.last_open, now=now.timestamp(), minutes=lookahead_minutes
    )
    order = open_times.ranked(profiles.user_ids, scores, minimum=minimum)
    result.likely = len(order)
    row = {user: i for i, user in enumerate(profiles.user_ids)}
    # The cache is checked a chunk at a time: few of the likeliest readers have a feed.
    chunk = max(2 * budget, 50)
    for start in range(0, len(order), chunk):
        part = [user for user, _ in order[start : start + chunk]]
        cached = feed_cache.cached_feeds(part, now=now)
        for user in part:
            if result.built >= budget or result.seconds >= budget_seconds:
                result.budget_spent = True
                break
            if user in cached:
                result.skipped += 1
                continue
            i = row[user]
            started = time.perf_counter()
            try:
                ok = feed_cache.prebuild(
                    user,
                    now=now,
                    platform=profiles.platform[i] or None,
                    place=place_of(profiles.place[i]),
                    ttl=ttl,
                )
            except redis.RedisError as exc:
                logger.warning("experience.prebuild_failed user=%s error=%s", user, exc)
                ok = False
            result.seconds += time.perf_counter() - started
            if ok is None:  # in a running experiment: built when they ask (exposure then)
                result.skipped += 1
                continue
            result.built += ok
            result.failed += not ok
        if result.budget_spent:
            break
    result.seconds = round(result.seconds, 3)
    _count(result)
    logger.info("experience.prebuild %s", " ".join(f"{k}={v}" for k, v in asdict(result).items()))
    return result


def _count(result: RunResult) -> None:
    try:
        pipe = inbo_redis.state().pipeline(transaction=False)
        stats = keys.prebuild_stats()
        pipe.hincrby(stats, "runs", 1)
        for field in ("built", "skipped", "failed"):
            pipe.hincrby(stats, field, getattr(result, field))
        pipe.hincrbyfloat(stats, "seconds", result.seconds)
        pipe.hincrby(stats, "budget_spent", int(result.budget_spent))
        pipe.execute()
    except redis.RedisError as exc:  # the figures are a report; the feeds are built
        logger.warning("experience.prebuild_stats_failed error=%s", exc)


def stats() -> dict[str, float] | None:
    """Totals of every run (``keys.prebuild_stats``) and the home requests by source:
    ``prebuilt`` (the first hit on a pre-built feed), ``cached`` (other hits), ``built``
    (misses). None if Redis is unreachable."""
    try:
        pipe = inbo_redis.state().pipeline(transaction=False)
        pipe.hgetall(keys.prebuild_stats())
        pipe.hgetall(keys.feed_cache_stats())
        runs, home = pipe.execute()
    except redis.RedisError:
        return None
    out = {f"prebuild_{k}": float(runs.get(k, 0)) for k in _RUN_FIELDS}
    hit, prebuilt = int(home.get("hit", 0)), int(home.get("prebuilt", 0))
    out.update(
        home_prebuilt=float(prebuilt),
        home_cached=float(hit - prebuilt),
        home_built=float(home.get("miss", 0)),
    )
    return out


_RUN_FIELDS = ("runs", "built", "skipped", "failed", "seconds", "budget_spent")
