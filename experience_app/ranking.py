"""The one ranking function: scores a candidate set for a user at a given time.

The home feed and the offline evaluation both call :func:`rank`, so what is measured is
what is served. Every score is a weighted sum of named signals; the signals are returned
with the score, shown to clients as the explanation and logged with each served item.

Signals (all computed at ``now``, from data known before ``now``):

- ``popularity``: ln of the item's lift — decayed clicks over the clicks expected where it
  was shown, smoothed by one expected click (``ItemSignals.lift``). 0 for an unseen item.
- ``freshness``: 2^(-age / half-life), age from ``published_at``.
- ``affinity``: how much the user's learned category taste (plus onboarding interests)
  favours the item's categories, in [-1, 1]; a subcategory of a picked topic counts as
  that topic.
- ``provider_affinity``: the same for the item's provider.
- ``subscribed``: 1 when the user follows the provider.
- ``seen``: 1 when the item was already shown to the user and not engaged with.
- ``similarity``: cosine of the item's text embedding to the user's (present only for the
  user's precomputed "similar" candidates, see ``inbo.keys.learned_candidates``).
- ``session``: session-kNN's score of the item after the user's current reading session,
  scaled so the best next read is 1 (present only for the session's next reads, see
  ``features_app.sessions``; passed in through ``learned``).
- ``hour_match``, ``item_hour_lift``, ``region_popularity``, ``language_match``: the time
  and place signals of :mod:`experience_app.time_place`, passed in per item through
  ``learned`` (absent when unknown or when Redis is away).

Features the linear score does not weigh but the learned reranker reads (logged with every
served item, so the served log is the reranker's point-in-time training set):
``ctr`` (smoothed lifetime click-through rate), ``impressions_log``, ``clicks_log``,
``reads_log``, ``saves_log`` (ln(1 + lifetime count)), ``dismiss_rate``,
``decayed_clicks_log`` and ``expected_clicks_log`` (ln(1 + the decayed sums behind
``popularity``), ``age_hours_log`` and ``als`` (the ALS score, for the user's precomputed ALS
candidates only), ``engagement_level`` (the user's engagement segment, 0 dormant, 1 new,
2 casual, 3 regular, 4 power; absent for a user never segmented). A feature the item lacks
is absent, never 0 (see :mod:`experience_app.learned`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

from features_app.contracts import ItemSignals, UserProfile


@dataclass(frozen=True, slots=True)
class Weights:
    """How much each signal counts. Defaults come from settings (``EXPERIENCE_WEIGHT_*``)."""

    popularity: float = 1.0
    freshness: float = 0.4
    affinity: float = 1.0
    provider_affinity: float = 0.5
    subscribed: float = 0.5
    seen: float = 1.0
    similarity: float = 0.5
    session: float = 1.0
    freshness_half_life_hours: float = 24.0
    # Time and place (issue 13, ``experience_app.time_place``): log-lifts, 0 when unknown.
    hour_match: float = 0.0
    item_hour_lift: float = 0.5
    region_popularity: float = 0.5
    language_match: float = 0.25

    @classmethod
    def from_settings(cls) -> Weights:
        return cls(
            popularity=settings.EXPERIENCE_WEIGHT_POPULARITY,
            freshness=settings.EXPERIENCE_WEIGHT_FRESHNESS,
            affinity=settings.EXPERIENCE_WEIGHT_AFFINITY,
            provider_affinity=settings.EXPERIENCE_WEIGHT_PROVIDER_AFFINITY,
            subscribed=settings.EXPERIENCE_WEIGHT_SUBSCRIBED,
            seen=settings.EXPERIENCE_WEIGHT_SEEN,
            similarity=settings.EXPERIENCE_WEIGHT_SIMILARITY,
            session=settings.EXPERIENCE_WEIGHT_SESSION,
            freshness_half_life_hours=settings.EXPERIENCE_FRESHNESS_HALF_LIFE_HOURS,
            hour_match=settings.EXPERIENCE_WEIGHT_HOUR_MATCH,
            item_hour_lift=settings.EXPERIENCE_WEIGHT_ITEM_HOUR_LIFT,
            region_popularity=settings.EXPERIENCE_WEIGHT_REGION_POPULARITY,
            language_match=settings.EXPERIENCE_WEIGHT_LANGUAGE_MATCH,
        )


@dataclass(frozen=True, slots=True)
class Candidate:
    """An item that may be shown: what ranking needs to know of it."""

    item_id: int
    provider_id: int | None
    category_ids: tuple[int, ...]
    published_at: datetime


@dataclass(frozen=True, slots=True)
class UserContext:
    """What ranking needs to know of the user."""

    profile: UserProfile
    subscribed_provider_ids: frozenset[int] = frozenset()
    interest_category_ids: frozenset[int] = frozenset()
    # Subcategories of the picked topics, child id -> picked parent id: an item tagged with
    # a subcategory counts as in its parent topic (``affinity``).
    interest_parents: Mapping[int, int] = field(default_factory=dict)
    # The user's engagement segment as a level (``UserSegment.engagement_level``); None when
    # never segmented. The same for every candidate: the learned reranker reads it.
    engagement_level: int | None = None


@dataclass(frozen=True, slots=True)
class Scored:
    item_id: int
    score: float
    signals: dict[str, float] = field(default_factory=dict)
    # With a learned reranker: the features that moved the score most, (name, contribution).
    top_features: tuple[tuple[str, float], ...] = ()


# Onboarding interests count like this much learned affinity per picked category.
INTEREST_AFFINITY = 2.0


def _normalised(weights: Mapping[int, float], keys: Iterable[int]) -> float:
    """Sum of the user's weights on ``keys`` over everything the user weighs, in [-1, 1]."""
    total = sum(abs(v) for v in weights.values())
    if total == 0:
        return 0.0
    return max(-1.0, min(1.0, sum(weights.get(k, 0.0) for k in keys) / (1.0 + total)))


def _with_parents(category_ids: tuple[int, ...], parents: Mapping[int, int]) -> Iterable[int]:
    """The item's categories and the picked topics its subcategories belong to, once each."""
    if not parents:
        return category_ids
    return {*category_ids, *(parents[c] for c in category_ids if c in parents)}


def linear_score(values: Mapping[str, float], w: Weights) -> float:
    """The linear ranking's score of one item from its signal values (absent: 0)."""
    return (
        w.popularity * values.get("popularity", 0.0)
        + w.freshness * values.get("freshness", 0.0)
        + w.affinity * values.get("affinity", 0.0)
        + w.provider_affinity * values.get("provider_affinity", 0.0)
        + w.subscribed * values.get("subscribed", 0.0)
        - w.seen * values.get("seen", 0.0)
        + w.similarity * values.get("similarity", 0.0)
        + w.session * values.get("session", 0.0)
        + w.hour_match * values.get("hour_match", 0.0)
        + w.item_hour_lift * values.get("item_hour_lift", 0.0)
        + w.region_popularity * values.get("region_popularity", 0.0)
        + w.language_match * values.get("language_match", 0.0)
    )


def tiebreak(item_id: int) -> int:
    # Fair and deterministic: never the candidate order, which may carry information.
    return int.from_bytes(hashlib.blake2b(str(item_id).encode(), digest_size=4).digest(), "big")


def rank(
    candidates: Iterable[Candidate],
    user: UserContext,
    signals: Mapping[int, ItemSignals],
    *,
    now: datetime,
    weights: Weights | None = None,
    learned: Mapping[int, Mapping[str, float]] | None = None,
) -> list[Scored]:
    """Score and order ``candidates`` (best first) for ``user`` at ``now``.

    ``learned`` holds, per item, the learned-source scores known for it (``als``,
    ``similarity``, ``session``); an item without one simply lacks that feature.
    """
    w = weights or Weights.from_settings()
    category_taste = dict(user.profile.category_affinity)
    for category_id in user.interest_category_ids:
        category_taste[category_id] = category_taste.get(category_id, 0.0) + INTEREST_AFFINITY
    parents = user.interest_parents
    half_life = w.freshness_half_life_hours * 3600.0
    scored: list[Scored] = []
    for c in candidates:
        s = signals.get(c.item_id) or ItemSignals(item_id=c.item_id)
        age = max(0.0, (now - c.published_at).total_seconds())
        values = {
            "popularity": math.log(s.lift),
            "freshness": 2.0 ** (-age / half_life),
            "affinity": _normalised(category_taste, _with_parents(c.category_ids, parents)),
            "provider_affinity": (
                _normalised(user.profile.provider_affinity, (c.provider_id,))
                if c.provider_id is not None
                else 0.0
            ),
            "subscribed": 1.0 if c.provider_id in user.subscribed_provider_ids else 0.0,
            "seen": 1.0 if user.profile.seen.get(c.item_id, 0) > 0 else 0.0,
            "ctr": s.ctr,
            "impressions_log": math.log1p(s.impressions),
            "clicks_log": math.log1p(s.clicks),
            "reads_log": math.log1p(s.reads),
            "saves_log": math.log1p(s.saves),
            "dismiss_rate": s.dismisses / (s.impressions + 25.0),
            "decayed_clicks_log": math.log1p(s.decayed_clicks),
            "expected_clicks_log": math.log1p(s.decayed_expected),
            "age_hours_log": math.log1p(age / 3600.0),
        }
        if user.engagement_level is not None:
            values["engagement_level"] = float(user.engagement_level)
        if learned is not None and c.item_id in learned:
            values.update(learned[c.item_id])
        score = linear_score(values, w)
        scored.append(Scored(c.item_id, score, {k: round(v, 4) for k, v in values.items()}))
    scored.sort(key=lambda x: (-x.score, tiebreak(x.item_id)))
    return scored
