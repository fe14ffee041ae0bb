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

import numpy as np
from django.conf import settings

from experience_app import learned
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


def _normalised(
    weights: Mapping[int, float], keys: Iterable[int], total: float | None = None
) -> float:
    """Sum of the user's weights on ``keys`` over everything the user weighs, in [-1, 1].
    ``total``: ``_total(weights)``, when the caller already has it."""
    if total is None:
        total = _total(weights)
    if total == 0:
        return 0.0
    return max(-1.0, min(1.0, sum(weights.get(k, 0.0) for k in keys) / (1.0 + total)))


def _total(weights: Mapping[int, float]) -> float:
    return sum(abs(v) for v in weights.values())


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


# The signals every candidate has, in the order its ``signals`` name them; of those, the
# ones the linear score weighs (a learned source naming one replaces it, see ``rank``).
_BASE_SIGNALS = learned.BASE_SIGNALS
_WEIGHED_BASE = frozenset(_BASE_SIGNALS[:6])
_NO_LEARNED: Mapping[str, float] = {}


def round4(values: np.ndarray) -> np.ndarray:
    """``round(v, 4)`` of every value, the very double Python's ``round`` gives (the one
    nearest the correctly rounded decimal), for a whole array at once.

    Scaled by 10^4 and rounded half-even, then divided back (a correctly rounded division
    of an exact integer), a value rounds as Python rounds it unless the scaled product lies
    within a few ulps of a half (its rounding error could have crossed one), or is not
    finite, or too large to hold an exact integer: those few are rounded by Python.
    """
    scaled = values * 1e4
    whole = np.rint(scaled)
    out = whole / 1e4
    with np.errstate(invalid="ignore"):
        magnitude = np.abs(scaled)
        safe = (np.abs(np.abs(scaled - whole) - 0.5) > 4 * np.spacing(magnitude)) & (
            magnitude < 2.0**52
        )
    if not safe.all():
        flat_in, flat_out = values.reshape(-1), out.reshape(-1)
        for i in np.flatnonzero(~safe.reshape(-1)):
            flat_out[i] = round(float(flat_in[i]), 4)
    return out


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

    Each score is ``linear_score`` of the item's signals (written out here, in its order of
    operations, so the same double comes out); the signals are rounded to 4 decimals, all
    candidates at once (``round4``).
    """
    w = weights or Weights.from_settings()
    category_taste = dict(user.profile.category_affinity)
    for category_id in user.interest_category_ids:
        category_taste[category_id] = category_taste.get(category_id, 0.0) + INTEREST_AFFINITY
    parents = user.interest_parents
    half_life = w.freshness_half_life_hours * 3600.0
    # An item's affinities depend on its categories and provider only: computed once per
    # distinct value in a ranking (the candidates share a few dozen of each).
    category_total = _total(category_taste)
    provider_affinity = user.profile.provider_affinity
    provider_total = _total(provider_affinity)
    affinity_of: dict[tuple[int, ...], float] = {}
    provider_affinity_of: dict[int, float] = {}
    subscribed_to = user.subscribed_provider_ids
    seen_counts = user.profile.seen
    level = float(user.engagement_level) if user.engagement_level is not None else None
    learned = learned or {}
    ids: list[int] = []
    scores: list[float] = []
    rows: list[tuple[float, ...]] = []
    extras: list[Mapping[str, float]] = []
    log, log1p = math.log, math.log1p
    for c in candidates:
        s = signals.get(c.item_id) or ItemSignals(item_id=c.item_id)
        age = max(0.0, (now - c.published_at).total_seconds())
        affinity = affinity_of.get(c.category_ids)
        if affinity is None:
            affinity = affinity_of[c.category_ids] = _normalised(
                category_taste, _with_parents(c.category_ids, parents), category_total
            )
        by_provider = 0.0
        if c.provider_id is not None:
            known = provider_affinity_of.get(c.provider_id)
            if known is None:
                known = provider_affinity_of[c.provider_id] = _normalised(
                    provider_affinity, (c.provider_id,), provider_total
                )
            by_provider = known
        popularity = log(s.lift)
        freshness = 2.0 ** (-age / half_life)
        subscribed = 1.0 if c.provider_id in subscribed_to else 0.0
        seen = 1.0 if seen_counts.get(c.item_id, 0) > 0 else 0.0
        row = (
            popularity,
            freshness,
            affinity,
            by_provider,
            subscribed,
            seen,
            s.ctr,
            log1p(s.impressions),
            log1p(s.clicks),
            log1p(s.reads),
            log1p(s.saves),
            s.dismisses / (s.impressions + 25.0),
            log1p(s.decayed_clicks),
            log1p(s.decayed_expected),
            log1p(age / 3600.0),
        )
        extra = learned.get(c.item_id) or _NO_LEARNED
        if extra and not _WEIGHED_BASE.isdisjoint(extra):
            # A learned value replaces a weighed signal: scored from the merged values.
            values = dict(zip(_BASE_SIGNALS, row, strict=True))
            values.update(extra)
            score = linear_score(values, w)
        else:
            x = extra.get
            score = (
                w.popularity * popularity
                + w.freshness * freshness
                + w.affinity * affinity
                + w.provider_affinity * by_provider
                + w.subscribed * subscribed
                - w.seen * seen
                + w.similarity * x("similarity", 0.0)
                + w.session * x("session", 0.0)
                + w.hour_match * x("hour_match", 0.0)
                + w.item_hour_lift * x("item_hour_lift", 0.0)
                + w.region_popularity * x("region_popularity", 0.0)
                + w.language_match * x("language_match", 0.0)
            )
        ids.append(c.item_id)
        scores.append(score)
        rows.append(row)
        extras.append(extra)
    rounded = round4(np.array(rows, dtype=float)).tolist() if rows else []
    scored: list[Scored] = []
    for item_id, score, row_rounded, extra in zip(ids, scores, rounded, extras, strict=True):
        values = dict(zip(_BASE_SIGNALS, row_rounded, strict=True))
        if level is not None:
            values["engagement_level"] = round(level, 4)
        for name, value in extra.items():
            values[name] = round(value, 4)
        scored.append(Scored(item_id, score, values))
    return _best_first(scored)


def _best_first(scored: list[Scored]) -> list[Scored]:
    """``scored`` by score, best first, ties by ``tiebreak`` (only ties pay for it)."""
    scored.sort(key=lambda x: -x.score)
    i, n = 0, len(scored)
    while i < n:
        j = i + 1
        while j < n and scored[j].score == scored[i].score:
            j += 1
        if j - i > 1:
            scored[i:j] = sorted(scored[i:j], key=lambda x: tiebreak(x.item_id))
        i = j
    return scored
