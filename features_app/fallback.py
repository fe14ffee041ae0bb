"""The degraded path: the same signals computed from the event log in PostgreSQL.

Used when Redis is unreachable. Slower and approximate (each impression expects the prior
click rate instead of its list's), but the feed keeps answering.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection

from features_app import baseline
from features_app.contracts import (
    AFFINITY_WEIGHTS,
    POSITIVE_TYPES,
    EventType,
    ItemSignals,
    UserProfile,
)
from features_app.forgetting import rules as forgetting_rules
from features_app.models import UserEvent
from reading_app.public import item_facets

PROFILE_EVENTS = 2000  # a user's most recent events read to rebuild the profile
TRENDING_WINDOW = timedelta(hours=48)

# An event's weight now; greatest(-1000, …) because 2^-1000 is still a normal double, so
# old events never underflow.
_DECAY = "power(2, greatest(-1000, -extract(epoch FROM %(now)s - occurred_at) / %(half_life)s))"

_SIGNALS = f"""
SELECT item_id,
       count(*) FILTER (WHERE event_type = 'impression'),
       count(*) FILTER (WHERE event_type = 'click'),
       count(*) FILTER (WHERE event_type = 'read'),
       count(*) FILTER (WHERE event_type = 'save'),
       count(*) FILTER (WHERE event_type = 'dismiss'),
       coalesce(sum({_DECAY})
                FILTER (WHERE event_type = 'click'), 0),
       coalesce(sum({_DECAY})
                FILTER (WHERE event_type = 'impression'), 0) * %(prior)s,
       min(occurred_at) FILTER (WHERE event_type = 'impression')
FROM {UserEvent._meta.db_table}
WHERE item_id = ANY(%(ids)s) AND occurred_at <= %(now)s
GROUP BY item_id
"""

_TRENDING = f"""
SELECT item_id, sum({_DECAY}) AS mass
FROM {UserEvent._meta.db_table}
WHERE event_type = 'click' AND occurred_at > %(since)s AND occurred_at <= %(now)s
GROUP BY item_id
ORDER BY mass DESC, item_id
LIMIT %(limit)s
"""


def _half_life_seconds() -> float:
    return float(settings.FEATURES_CLICK_HALF_LIFE_HOURS) * 3600.0


def item_signals_from_log(item_ids: Sequence[int], *, now: datetime) -> dict[int, ItemSignals]:
    ids = list(dict.fromkeys(item_ids))
    result = {item_id: ItemSignals(item_id=item_id) for item_id in ids}
    if not ids:
        return result
    with connection.cursor() as cursor:
        cursor.execute(
            _SIGNALS,
            {
                "ids": ids,
                "now": now,
                "half_life": _half_life_seconds(),
                "prior": settings.FEATURES_PRIOR_CTR,
            },
        )
        for row in cursor.fetchall():
            item_id, imp, clk, reads, saves, dismisses, dclk, dexp, first = row
            result[item_id] = ItemSignals(
                item_id=item_id,
                impressions=imp,
                clicks=clk,
                reads=reads,
                saves=saves,
                dismisses=dismisses,
                decayed_clicks=float(dclk),
                decayed_expected=float(dexp),
                first_seen=first,
            )
    # Detached months count through their baselines (ADR 0026); their decayed sums are
    # left out (months old, they weigh nothing now).
    for item_id, extra in baseline.item_counts(ids).items():
        was = result[item_id]
        seen = extra.get("first_seen")
        result[item_id] = replace(
            was,
            **{
                name: getattr(was, name) + int(extra.get(kind, 0))
                for name, kind in _BASELINE_FIELDS.items()
            },
            first_seen=min(
                (t for t in (was.first_seen, seen and datetime.fromtimestamp(seen, UTC)) if t),
                default=None,
            ),
        )
    return result


_BASELINE_FIELDS = {
    "impressions": EventType.IMPRESSION.value,
    "clicks": EventType.CLICK.value,
    "reads": EventType.READ.value,
    "saves": EventType.SAVE.value,
    "dismisses": EventType.DISMISS.value,
}


def user_profile_from_log(user_id: int, *, now: datetime) -> UserProfile:
    rows = list(
        UserEvent.objects.filter(user_id=user_id, occurred_at__lte=now)
        .order_by("-occurred_at", "-id")
        .values_list("item_id", "event_type", "occurred_at")[:PROFILE_EVENTS]
    )
    # Oldest first, as the counters apply them: impressions before anything else of the same
    # instant, so an impression and its click sent together leave nothing "seen".
    rows.reverse()
    rows.sort(key=lambda row: (row[2], row[1] != EventType.IMPRESSION))
    facets = item_facets([item_id for item_id, _, _ in rows])
    # What the user asked to forget stays forgotten here too (features_app.forgetting).
    rule = forgetting_rules([user_id]).get(user_id)
    counts: Counter[str] = Counter()
    categories: dict[int, float] = defaultdict(float)
    providers: dict[int, float] = defaultdict(float)
    seen: Counter[int] = Counter()
    for item_id, event_type, occurred_at in rows:
        kind = EventType(event_type)
        ts = occurred_at.timestamp()
        if rule is not None and rule.all(ts):
            continue
        counts[kind.value] += 1
        weight = AFFINITY_WEIGHTS[kind]
        facet = facets.get(item_id)
        if weight and facet is not None:
            for category_id in facet.category_ids:
                if rule is None or not rule.category(category_id, ts):
                    categories[category_id] += weight
            if rule is None or not rule.provider(facet.provider_id, ts):
                providers[facet.provider_id] += weight
        if kind == EventType.IMPRESSION:
            seen[item_id] += 1
        elif kind in POSITIVE_TYPES:
            seen.pop(item_id, None)
    return UserProfile(
        user_id=user_id,
        event_counts=dict(counts),
        category_affinity={k: float(v) for k, v in categories.items()},
        provider_affinity={k: float(v) for k, v in providers.items()},
        seen={k: v for k, v in seen.items() if v > 0},
    )


def trending_from_log(*, now: datetime, limit: int) -> list[tuple[int, float]]:
    with connection.cursor() as cursor:
        cursor.execute(
            _TRENDING,
            {
                "now": now,
                "since": now - TRENDING_WINDOW,
                "half_life": _half_life_seconds(),
                "limit": limit,
            },
        )
        return [(item_id, float(mass)) for item_id, mass in cursor.fetchall()]
