"""Features of the learned DeskDrop ranker, computed from one window of interactions.

A :class:`Window` holds what is known at a moment ``now`` from the interactions before it:
item statistics (decayed popularity at several half-lives, recent counts, age, last read,
share of strong events), user statistics (activity, recency), and the user-item signals the
candidate generators use (implicit ALS with event-type confidence, item-kNN co-engagement
over all and over recent reading). Nothing after ``now`` is read:
:func:`build_window` refuses later rows.

No feature depends on the articles file (title, text, author): the development articles file
is the year's most-read subset, so its membership would leak the future (dataset README).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from ml_app.als import AlsModel, AlsParams
from ml_app.datasets.deskdrop import Interaction, pair_strength

DAY = 86_400
HALF_LIVES_DAYS = (1.0, 3.0, 7.0, 30.0)
RECENT_PROFILE_DAYS = 7.0  # half-life of a user's own reading in the recent kNN profile
# ALS for DeskDrop: confidence = alpha * pair strength (log2(1 + event weights)).
ALS_PARAMS = AlsParams(factors=32, regularization=5.0, alpha=10.0, iterations=15)

ITEM_FEATURES = (
    *(f"pop_decayed_{h:g}d" for h in HALF_LIVES_DAYS),
    "events_1d",
    "events_7d",
    "events_30d",
    "age_days",
    "last_read_days",
    "trend_1d_7d",
    "strong_share",
    "rank_decayed",
    "rank_recency",
)
USER_FEATURES = ("user_items_30d", "user_events_30d", "user_idle_days", "user_recent")
PAIR_FEATURES = ("als", "als_rank", "knn", "knn_rank", "knn_recent", "knn_recent_rank")
FEATURES = ITEM_FEATURES + USER_FEATURES + PAIR_FEATURES


@dataclass
class Window:
    """What is known at ``now``: indexes, item/user features, ALS and kNN signals."""

    now: int
    items: list[str]  # catalog items (rankable), then the other items seen in training
    item_index: dict[str, int]
    n_catalog: int
    users: list[str]
    user_index: dict[str, int]
    seen: dict[str, dict[str, float]]  # user → item → pair strength
    item_features: np.ndarray  # (n_items, len(ITEM_FEATURES))
    user_features: np.ndarray  # (n_users, len(USER_FEATURES))
    profile: csr_matrix  # users x items, pair strengths
    recent_profile: csr_matrix  # users x items, pair strengths decayed by the user's reading age
    similarity: np.ndarray  # items x items cosine of co-engagement, zero diagonal
    als: AlsModel | None
    als_seconds: float
    order: list[int]  # catalog indexes by 3-day decayed popularity, then newer, then id
    recency_order: list[int]  # catalog indexes newest shared first, then id

    def pair_scores(self, user: str) -> dict[str, np.ndarray]:
        """ALS, kNN and recent-kNN scores of every catalog item for a warm user."""
        n = self.n_catalog
        u = self.user_index[user]
        out = {}
        if self.als is not None and user in self.als.user_index:
            row = self.als.user_index[user]
            factors = self.als.item_factors
            vector = self.als.user_factors[row]
            cols = np.array(
                [self.als.item_index.get(it, -1) for it in self.items[:n]], dtype=np.int64
            )
            scores = np.zeros(n, dtype=np.float64)
            known = cols >= 0
            scores[known] = factors[cols[known]] @ vector
            out["als"] = scores
        else:
            out["als"] = np.zeros(n)
        out["knn"] = np.asarray(self.profile[u] @ self.similarity[:, :n]).ravel()
        out["knn_recent"] = np.asarray(self.recent_profile[u] @ self.similarity[:, :n]).ravel()
        return out

    def features(self, user: str, candidates: np.ndarray, scores: dict[str, np.ndarray]):
        """The FEATURES matrix for ``user`` and candidate item indexes."""
        u = self.user_index[user]
        n = len(candidates)
        pair = []
        for name in ("als", "knn", "knn_recent"):
            full = scores[name]
            rank = np.empty(len(full))
            rank[np.argsort(-full, kind="stable")] = np.arange(len(full))
            pair += [full[candidates], np.log1p(rank[candidates])]
        return np.hstack(
            [
                self.item_features[candidates],
                np.repeat(self.user_features[u][None, :], n, axis=0),
                np.column_stack(pair),
            ]
        ).astype(np.float32)


def build_window(
    rows: Sequence[Interaction],
    now: int,
    shared_at: Mapping[str, int],
    *,
    als_params: AlsParams | None = ALS_PARAMS,
) -> Window:
    """Everything the ranker knows at ``now`` from ``rows`` (all before ``now``).

    ``shared_at`` maps each rankable item (the catalog) to its share time."""
    catalog = sorted(item for item, at in shared_at.items() if at < now)
    extra = sorted({r.content_id for r in rows} - set(catalog))
    items = catalog + extra
    item_index = {item: i for i, item in enumerate(items)}
    n_items = len(items)
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    recent: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    decayed = np.zeros((len(HALF_LIVES_DAYS), n_items))
    events_1d, events_7d = np.zeros(n_items), np.zeros(n_items)
    strong, strength = np.zeros(n_items), np.zeros(n_items)
    first = np.full(n_items, float(now))
    last = np.full(n_items, -math.inf)
    user_last: dict[str, int] = {}
    user_events: dict[str, int] = defaultdict(int)
    user_items_30d: dict[str, set[str]] = defaultdict(set)
    events_30d = np.zeros(n_items)
    user_recent: dict[str, float] = defaultdict(float)
    for row in rows:
        if row.timestamp >= now:
            raise ValueError(f"interaction at {row.timestamp} is not before {now}")
        i = item_index[row.content_id]
        user, age = row.person_id, (now - row.timestamp) / DAY
        totals[user][row.content_id] += row.strength
        recent[user][row.content_id] += row.strength * 0.5 ** (age / RECENT_PROFILE_DAYS)
        for h, half_life in enumerate(HALF_LIVES_DAYS):
            decayed[h, i] += row.strength * 0.5 ** (age / half_life)
        events_1d[i] += age < 1
        events_7d[i] += age < 7
        strength[i] += row.strength
        strong[i] += row.strength if row.event != "VIEW" else 0.0
        first[i], last[i] = min(first[i], row.timestamp), max(last[i], row.timestamp)
        user_last[user] = max(user_last.get(user, row.timestamp), row.timestamp)
        if age < 30:
            user_events[user] += 1
            user_items_30d[user].add(row.content_id)
            events_30d[i] += 1
        user_recent[user] += 0.5 ** (age / RECENT_PROFILE_DAYS)
    for item, at in shared_at.items():
        if item in item_index:
            first[item_index[item]] = min(first[item_index[item]], at)
    seen = {u: {i: pair_strength(t) for i, t in per.items()} for u, per in totals.items()}
    users = sorted(seen)
    user_index = {u: k for k, u in enumerate(users)}
    order = sorted(range(len(catalog)), key=lambda i: (-decayed[1, i], -first[i], items[i]))
    rank_decayed = np.zeros(n_items)
    rank_decayed[order] = np.arange(len(order))
    by_age = sorted(range(len(catalog)), key=lambda i: (-first[i], items[i]))
    rank_recency = np.zeros(n_items)
    rank_recency[by_age] = np.arange(len(by_age))
    last_read = np.where(np.isfinite(last), (now - last) / DAY, 365.0)
    item_features = np.column_stack(
        [
            *(np.log1p(decayed[h]) for h in range(len(HALF_LIVES_DAYS))),
            np.log1p(events_1d),
            np.log1p(events_7d),
            np.log1p(events_30d),
            np.log1p((now - first) / DAY),
            np.log1p(last_read),
            (decayed[0] + 0.01) / (decayed[2] + 0.01),
            strong / np.maximum(strength, 1e-9),
            np.log1p(rank_decayed),
            np.log1p(rank_recency),
        ]
    )
    user_features = np.array(
        [
            [
                math.log1p(len(user_items_30d[u])),
                math.log1p(user_events[u]),
                math.log1p((now - user_last[u]) / DAY),
                math.log1p(user_recent[u]),
            ]
            for u in users
        ]
    ).reshape(len(users), len(USER_FEATURES))
    profile = _matrix(seen, user_index, item_index, (len(users), n_items))
    recent_profile = _matrix(recent, user_index, item_index, (len(users), n_items))
    als, als_seconds = None, 0.0
    if als_params is not None and seen:
        start = time.perf_counter()
        als = AlsModel.train(
            ((u, i, s) for u, per in seen.items() for i, s in per.items()), als_params
        )
        als_seconds = time.perf_counter() - start
    return Window(
        now=now,
        items=items,
        item_index=item_index,
        n_catalog=len(catalog),
        users=users,
        user_index=user_index,
        seen=seen,
        item_features=item_features,
        user_features=user_features,
        profile=profile,
        recent_profile=recent_profile,
        similarity=_cosine(profile),
        als=als,
        als_seconds=als_seconds,
        order=order,
        recency_order=by_age,
    )


def _matrix(
    values: Mapping[str, Mapping[str, float]],
    user_index: dict[str, int],
    item_index: dict[str, int],
    shape: tuple[int, int],
) -> csr_matrix:
    rows, cols, data = [], [], []
    for user, per in values.items():
        for item, v in per.items():
            rows.append(user_index[user])
            cols.append(item_index[item])
            data.append(v)
    return csr_matrix((data, (rows, cols)), shape=shape, dtype=np.float64)


def _cosine(profile: csr_matrix) -> np.ndarray:
    """Item x item cosine over users' pair strengths, zero on the diagonal (dense)."""
    with threadpool_limits(limits=1):
        norms = np.sqrt(np.asarray(profile.multiply(profile).sum(axis=0)).ravel())
        dots = (profile.T @ profile).toarray()
    similarity = dots / np.maximum(np.outer(norms, norms), 1e-12)
    np.fill_diagonal(similarity, 0.0)
    return similarity
