"""Baseline recommenders for DeskDrop, fitted on a training window of interactions only.

Each method turns the training window into a ranking of a candidate catalog for a user,
best first, with the user's already engaged items left out:

- ``popularity``: total engagement strength per item (sum over users of the pair strength);
- ``popularity_decayed``: the same per event, each weighted ``0.5 ** (age / half-life)`` at
  the end of the window (news fades fast: most reading is of recent articles);
- ``recency``: newest shared first (share time, or the first interaction where no share
  event is known);
- ``item_knn``: item-kNN co-engagement: an item scores the sum, over the user's items, of the
  user's pair strength times the items' cosine similarity (over users' pair strengths);
  items with no co-engagement follow in ``popularity_decayed`` order (so a cold user gets it).

Ties break by newer share time, then id, so every ranking is reproducible. Pure Python: the
development file has ~58k interactions and ~2.4k items.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ml_app.datasets.deskdrop import Interaction, pair_strength

POPULARITY = "popularity"
POPULARITY_DECAYED = "popularity_decayed"
RECENCY = "recency"
ITEM_KNN = "item_knn"
METHODS = (POPULARITY, POPULARITY_DECAYED, RECENCY, ITEM_KNN)
METHOD_LABELS = {
    POPULARITY: "popularity (strength)",
    POPULARITY_DECAYED: "popularity, decayed",
    RECENCY: "recency (newest shared)",
    ITEM_KNN: "item-kNN co-engagement",
}
DEFAULT_HALF_LIFE_DAYS = 3.0
KNN_NEIGHBOURS = 50  # neighbours kept per item
# The method recommend_for_users serves: the best on the development file's time split
# (docs/ML.md, "DeskDrop").
BEST = POPULARITY_DECAYED
DAY = 86_400


@dataclass(frozen=True)
class Fitted:
    """What the baselines learned from one training window."""

    pairs: dict[str, dict[str, float]]  # user → item → pair strength
    popularity: dict[str, float]
    decayed: dict[str, float]
    neighbours: dict[str, list[tuple[str, float]]]  # item → [(item, cosine)], best first
    shared_at: dict[str, int]  # item → share time (or first interaction)


def fit(
    train: Sequence[Interaction],
    *,
    now: int,
    shared_at: Mapping[str, int] | None = None,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    knn: bool = True,
) -> Fitted:
    """Fit every baseline on ``train`` (interactions before ``now``; later ones are refused)."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    decayed: dict[str, float] = defaultdict(float)
    first: dict[str, int] = {}
    half_life = half_life_days * DAY
    for row in train:
        if row.timestamp >= now:
            raise ValueError(f"interaction at {row.timestamp} is not before {now}")
        totals[row.person_id][row.content_id] += row.strength
        decayed[row.content_id] += row.strength * 0.5 ** ((now - row.timestamp) / half_life)
        if row.content_id not in first or row.timestamp < first[row.content_id]:
            first[row.content_id] = row.timestamp
    pairs = {u: {i: pair_strength(t) for i, t in items.items()} for u, items in totals.items()}
    popularity: dict[str, float] = defaultdict(float)
    for items in pairs.values():
        for item, strength in items.items():
            popularity[item] += strength
    known = dict(first)
    for item, at in (shared_at or {}).items():
        known[item] = min(at, known.get(item, at))
    return Fitted(
        pairs=pairs,
        popularity=dict(popularity),
        decayed=dict(decayed),
        neighbours=_neighbours(pairs) if knn else {},
        shared_at=known,
    )


def _neighbours(pairs: dict[str, dict[str, float]]) -> dict[str, list[tuple[str, float]]]:
    norms: dict[str, float] = defaultdict(float)
    dots: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for items in pairs.values():
        entries = list(items.items())
        for a, wa in entries:
            norms[a] += wa * wa
            row = dots[a]
            for b, wb in entries:
                if a != b:
                    row[b] += wa * wb
    result = {}
    for a, row in dots.items():
        scored = [(b, dot / math.sqrt(norms[a] * norms[b])) for b, dot in row.items()]
        scored.sort(key=lambda e: (-e[1], e[0]))
        result[a] = scored[:KNN_NEIGHBOURS]
    return result


def base_order(fitted: Fitted, catalog: Iterable[str], method: str) -> list[str]:
    """The catalog in a non-personalized method's order (``item_knn`` falls back to the
    decayed popularity order)."""
    score = {
        POPULARITY: fitted.popularity,
        POPULARITY_DECAYED: fitted.decayed,
        ITEM_KNN: fitted.decayed,
        RECENCY: {},
    }[method]
    shared = fitted.shared_at
    return sorted(catalog, key=lambda i: (-score.get(i, 0.0), -shared.get(i, 0), i))


def rank_for_user(
    fitted: Fitted,
    method: str,
    user: str,
    order: Sequence[str],
    *,
    catalog: set[str] | frozenset[str],
    limit: int | None = None,
) -> list[str]:
    """``order`` (the method's :func:`base_order`) for ``user``: unseen items only, and for
    ``item_knn`` the co-engaged items first."""
    seen = fitted.pairs.get(user, {})
    head: list[str] = []
    if method == ITEM_KNN and seen:
        scores: dict[str, float] = defaultdict(float)
        for item, strength in seen.items():
            for other, similarity in fitted.neighbours.get(item, ()):
                if other in catalog and other not in seen:
                    scores[other] += strength * similarity
        shared = fitted.shared_at
        head = sorted(scores, key=lambda i: (-scores[i], -shared.get(i, 0), i))
        seen = {**seen, **dict.fromkeys(head, 0.0)}
    ranked = head[:limit] if limit is not None else head
    for item in order:
        if limit is not None and len(ranked) >= limit:
            break
        if item not in seen:
            ranked.append(item)
    return ranked


def recommend_for_users(
    train_rows: Sequence[Interaction],
    user_ids: Iterable[str],
    k: int = 50,
    *,
    method: str = BEST,
) -> dict[str, list[str]]:
    """Top-``k`` unseen items for each user, from ``train_rows`` only (any user, cold ones
    included: they get the non-personalized order). The catalog is every item of
    ``train_rows``; the window ends one second after its last interaction."""
    if not train_rows:
        return {user: [] for user in user_ids}
    now = max(row.timestamp for row in train_rows) + 1
    fitted = fit(train_rows, now=now, knn=method == ITEM_KNN)
    catalog = frozenset(fitted.shared_at)
    order = base_order(fitted, catalog, method)
    return {
        user: rank_for_user(fitted, method, user, order, catalog=catalog, limit=k)
        for user in user_ids
    }
