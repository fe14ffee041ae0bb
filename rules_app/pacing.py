"""Delivery of sponsored campaigns, counted in Redis (the state database).

A campaign's impressions are counted when a feed that shows one of its items is built (the
cached home then serves that same page until it is built again: one feed, one impression);
a user's impressions of a campaign are counted per UTC day for the cap. Pacing spreads the
budget over the campaign's time: a campaign serves only while what it delivered is below
``budget * elapsed share`` plus a small slack (``PACING_SLACK`` of the budget, at least one
impression, so a campaign can start). Reading or counting failing (Redis away) means no
sponsored item at all, never an unpaced one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import redis

from inbo import keys
from inbo import redis as inbo_redis
from rules_app.snapshot import Campaign

PACING_SLACK = 0.01


def allowance(campaign: Campaign, now: datetime) -> float:
    """How many impressions the campaign may have delivered by ``now``."""
    span = (campaign.ends_at - campaign.starts_at).total_seconds()
    elapsed = (now - campaign.starts_at).total_seconds()
    share = min(1.0, max(0.0, elapsed / span)) if span > 0 else 1.0
    slack = max(1.0, campaign.budget * PACING_SLACK)
    return min(float(campaign.budget), campaign.budget * share + slack)


def day_of(now: datetime) -> str:
    return now.strftime("%Y%m%d")


def read(
    campaigns: Sequence[Campaign], user_id: int, now: datetime
) -> dict[int, tuple[int, int]] | None:
    """{campaign id: (delivered, delivered to this user today)} in one round trip; None
    when Redis cannot answer."""
    if not campaigns:
        return {}
    day = day_of(now)
    names = [keys.rules_delivered(c.id) for c in campaigns]
    names += [keys.rules_user_day(c.id, user_id, day) for c in campaigns]
    try:
        values = inbo_redis.state().mget(names)
    except redis.RedisError:
        return None
    n = len(campaigns)
    return {c.id: (int(values[i] or 0), int(values[n + i] or 0)) for i, c in enumerate(campaigns)}


def count(placed: Iterable[Campaign], user_id: int, now: datetime) -> bool:
    """Count one impression of each campaign in ``placed`` (a campaign once per item shown),
    in one round trip; False when Redis did not take it (the caller then shows none)."""
    day = day_of(now)
    try:
        pipe = inbo_redis.state().pipeline(transaction=False)
        for campaign in placed:
            delivered = keys.rules_delivered(campaign.id)
            pipe.incr(delivered)
            grace = timedelta(seconds=keys.RULES_DELIVERED_GRACE_SECONDS)
            pipe.expireat(delivered, campaign.ends_at + grace)
            user_day = keys.rules_user_day(campaign.id, user_id, day)
            pipe.incr(user_day)
            pipe.expire(user_day, keys.RULES_USER_DAY_TTL_SECONDS)
        pipe.execute()
    except redis.RedisError:
        return False
    return True


def delivered(campaign_ids: Sequence[int]) -> dict[int, int]:
    """Impressions delivered so far by each campaign (the admin shows them); {} without
    Redis."""
    if not campaign_ids:
        return {}
    try:
        values = inbo_redis.state().mget([keys.rules_delivered(i) for i in campaign_ids])
    except redis.RedisError:
        return {}
    return {i: int(v or 0) for i, v in zip(campaign_ids, values, strict=True)}
