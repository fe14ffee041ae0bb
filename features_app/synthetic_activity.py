"""A synthetic feed's activity: items, users and four weeks of events, without PostgreSQL.

Used by ``manage.py features_memory_report`` to fill the counters of N items and M users
through the real ``counters.apply_events``.
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from features_app.contracts import EventIn, EventType
from reading_app.public import ItemFacets


@dataclass(frozen=True)
class World:
    """Synthetic activity: events in time order, and the facets of every item."""

    events: list[EventIn]
    facets: dict[int, ItemFacets]
    now: datetime


def _zipf_cum_weights(n: int, exponent: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, n + 1)))


def synthetic_world(
    *, items: int, users: int, days: int = 28, seed: int = 7, now: datetime | None = None
) -> World:
    """A feed's activity over ``days`` days.

    Item popularity follows Zipf (exponent 1) over a shuffled catalog, and 30 % of what
    is shown comes from the whole catalog (exploration), so nearly every item is seen.
    Users have a log-normal number of sessions (median 8, a long tail of heavy readers);
    a session shows a page of 10 items (one list, ``request_id``): 5 % are clicked, a
    click is read to the end 45 % of the time (with dwell), saved 8 %, shared 2 %; 2 % of
    impressions are dismissed and 0.5 % hidden. 45 categories, 2000 providers; one
    category per item, two for 30 % of items.
    """
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    start = now - timedelta(days=days)
    span = days * 86400.0
    providers = min(2000, max(1, items // 20))
    provider_weights = _zipf_cum_weights(providers, 0.8)
    facets: dict[int, ItemFacets] = {}
    for item_id in range(1, items + 1):
        provider = rng.choices(range(1, providers + 1), cum_weights=provider_weights)[0]
        categories = (
            (rng.randint(1, 45),) if rng.random() < 0.7 else tuple(rng.sample(range(1, 46), 2))
        )
        facets[item_id] = ItemFacets(
            item_id=item_id,
            provider_id=provider,
            category_ids=categories,
            published_at=start,
            available=True,
        )
    catalog = list(facets)
    rng.shuffle(catalog)
    popular = _zipf_cum_weights(items, 1.0)

    def candidates(k: int) -> list[int]:
        return [
            rng.choice(catalog) if rng.random() < 0.3 else pick
            for pick in rng.choices(catalog, cum_weights=popular, k=k)
        ]

    events: list[EventIn] = []

    def add(user_id: int, item_id: int, kind: EventType, at: datetime, **context: object) -> None:
        events.append(
            EventIn(
                user_id=user_id,
                item_id=item_id,
                event_type=kind,
                occurred_at=at,
                event_id=uuid.UUID(int=rng.getrandbits(128)),
                source="memory_report",
                context=context,
            )
        )

    for user_id in range(1, users + 1):
        sessions = max(1, min(400, round(rng.lognormvariate(math.log(8), 1.0))))
        for _ in range(sessions):
            at = start + timedelta(seconds=rng.random() * span)
            request_id = f"r{rng.getrandbits(48):x}"
            for item_id in candidates(10):
                add(user_id, item_id, EventType.IMPRESSION, at, request_id=request_id)
                roll = rng.random()
                if roll < 0.05:
                    later = at + timedelta(seconds=rng.randint(2, 60))
                    add(user_id, item_id, EventType.CLICK, later, request_id=request_id)
                    if rng.random() < 0.45:
                        add(
                            user_id,
                            item_id,
                            EventType.READ,
                            later + timedelta(seconds=rng.randint(30, 600)),
                            dwell_ms=rng.randint(20_000, 600_000),
                        )
                    if rng.random() < 0.08:
                        add(user_id, item_id, EventType.SAVE, later)
                    if rng.random() < 0.02:
                        add(user_id, item_id, EventType.SHARE, later)
                elif roll < 0.07:
                    add(user_id, item_id, EventType.DISMISS, at + timedelta(seconds=3))
                elif roll < 0.075:
                    add(user_id, item_id, EventType.HIDE, at + timedelta(seconds=3))
    events.sort(key=lambda e: e.occurred_at)
    return World(events=events, facets=facets, now=now)
