"""The learned DeskDrop ranker: candidate generators, then a LightGBM ``lambdarank`` reranker.

Stage one, per warm user, the union of the top ``per_source`` unseen catalog items of five
generators: 3-day decayed popularity, recency (newest shared), implicit ALS (confidence =
pair strength from the event-type weights), item-kNN co-engagement, and item-kNN over the
user's recent reading. Stage two scores those candidates with a LightGBM ``lambdarank`` model
on the features of ``deskdrop_features`` (source scores and ranks, popularity in several
windows, item age, user activity); the rest of the catalog follows
in decayed-popularity order, so the ranking covers the whole catalog (for MRR). A cold user
(no training interaction) gets decayed popularity.

Training never looks past the training period: the reranker's labels come from
``label_windows`` windows inside it, each ``label_share`` of the training interactions (by
time), the last one ending with the period; each window's features come from the interactions
before its start only. Then every generator is refitted on the whole training period to rank
the test period. Hyperparameters were chosen on three splits inside the
development training period only (docs/ML.md, "DeskDrop"). ``init_scale`` > 0 boosts from
decayed popularity (LightGBM ``init_score``); off, as it was not better there.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import lightgbm as lgb
import numpy as np

from ml_app.datasets.deskdrop import Interaction
from ml_app.services.deskdrop_features import FEATURES, ITEM_FEATURES, Window, build_window

POPULARITY = FEATURES.index("pop_decayed_3d")  # log1p of the 3-day decayed popularity

LEARNED = "learned"
LABEL = "learned: candidates → LightGBM"


@dataclass(frozen=True, slots=True)
class LearnedParams:
    # share of training interactions in one label window: 0.25, as the evaluation's test
    # period is 20% of all interactions, i.e. 25% of its training period
    label_share: float = 0.25
    label_windows: int = 8  # label windows, each ``window_stride`` (a share) before the next
    window_stride: float = 0.07
    per_source: int = 50  # candidates taken from each generator
    rounds: int = 150
    learning_rate: float = 0.05
    num_leaves: int = 7
    min_data_in_leaf: int = 100
    blend: float = 0.0  # weight of the decayed-popularity rank fused with the reranker's rank
    # Boosting from decayed popularity: LightGBM's init_score (and the score served) starts
    # at init_scale * log1p(3-day decayed popularity), so the trees learn corrections to it.
    # 0 = off (tried at 0.25 to 1 on the inner splits, not better: docs/ML.md).
    init_scale: float = 0.0
    seed: int = 0


@dataclass
class Timings:
    """Seconds spent training ALS (both windows) and LightGBM."""

    als_s: float = 0.0
    lgbm_s: float = 0.0
    total_s: float = 0.0


@dataclass
class LabelledSet:
    """Reranker training data: one group (user) of candidate rows at a time."""

    features: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    users: int = 0
    positives: int = 0
    covered: int = 0  # positives that are among the candidates


def candidates(window: Window, user: str, scores: Mapping[str, np.ndarray], per: int) -> np.ndarray:
    """Catalog indexes of the user's candidates (union of each generator's top ``per``),
    items the user engaged with left out; in first-found order."""
    seen = {window.item_index[i] for i in window.seen.get(user, {})}
    pools = [window.order, window.recency_order]
    for name in ("als", "knn", "knn_recent"):
        pools.append(np.argsort(-scores[name], kind="stable").tolist())
    found: dict[int, None] = {}
    for pool in pools:
        taken = 0
        for i in pool:
            if taken >= per:
                break
            if i in seen:
                continue
            taken += 1
            found.setdefault(int(i), None)
    return np.fromiter(found, dtype=np.int64, count=len(found))


def init_scores(features: np.ndarray, scale: float) -> np.ndarray:
    """The starting score of each candidate row: ``scale`` * log1p(3-day decayed popularity),
    monotone in the decayed-popularity order (zeros when ``scale`` is 0)."""
    return scale * features[:, POPULARITY].astype(np.float64)


def _labelled(window: Window, later: Sequence[Interaction], per: int) -> LabelledSet:
    positives: dict[str, set[int]] = {}
    for row in later:
        i = window.item_index.get(row.content_id)
        if (
            row.person_id in window.user_index
            and i is not None
            and i < window.n_catalog
            and row.content_id not in window.seen[row.person_id]
        ):
            positives.setdefault(row.person_id, set()).add(i)
    out = LabelledSet()
    for user in sorted(positives):
        scores = window.pair_scores(user)
        cands = candidates(window, user, scores, per)
        labels = np.isin(cands, list(positives[user])).astype(np.float32)
        out.positives += len(positives[user])
        out.covered += int(labels.sum())
        if labels.any() and not labels.all():
            out.features.append(window.features(user, cands, scores))
            out.labels.append(labels)
            out.users += 1
    return out


def _booster(data: LabelledSet, params: LearnedParams) -> lgb.Booster:
    features = np.vstack(data.features)
    train = lgb.Dataset(
        features,
        label=np.concatenate(data.labels),
        group=[len(y) for y in data.labels],
        feature_name=list(FEATURES),
        init_score=init_scores(features, params.init_scale) if params.init_scale else None,
        free_raw_data=True,
    )
    config = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "min_data_in_leaf": params.min_data_in_leaf,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambdarank_truncation_level": 20,
        "seed": params.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }
    return lgb.train(config, train, num_boost_round=params.rounds)


class LearnedRanker:
    """A fitted two-stage ranker over one training period (see the module docstring)."""

    def __init__(
        self, window: Window, booster: lgb.Booster | None, params: LearnedParams, timings: Timings
    ) -> None:
        self.window = window
        self.booster = booster
        self.params = params
        self.timings = timings

    def is_warm(self, user: str) -> bool:
        return user in self.window.user_index

    def rank(self, user: str, limit: int | None = None) -> list[str]:
        """Unseen catalog items for ``user``, best first (the whole catalog without a limit)."""
        w = self.window
        seen = w.seen.get(user, {})
        head: list[int] = []
        if self.booster is not None and user in w.user_index:
            scores = w.pair_scores(user)
            cands = candidates(w, user, scores, self.params.per_source)
            if len(cands):
                features = w.features(user, cands, scores)
                predicted = np.asarray(self.booster.predict(features, num_threads=1))
                predicted = predicted + init_scores(features, self.params.init_scale)
                order = np.argsort(-predicted, kind="stable")
                if self.params.blend > 0:
                    own = np.empty(len(order))
                    own[order] = np.arange(len(order))
                    popular = w.item_features[cands, ITEM_FEATURES.index("rank_decayed")]
                    fused = (1 - self.params.blend) * np.log1p(own) + self.params.blend * popular
                    order = np.lexsort((own, fused))
                head = [int(cands[k]) for k in order]
        taken = set(head)
        ranked = [w.items[i] for i in head]
        for i in w.order:
            if limit is not None and len(ranked) >= limit:
                break
            if i not in taken and w.items[i] not in seen:
                ranked.append(w.items[i])
        return ranked[:limit] if limit is not None else ranked


def fit_learned(
    rows: Sequence[Interaction],
    *,
    now: int,
    shared_at: Mapping[str, int],
    params: LearnedParams | None = None,
) -> LearnedRanker:
    """Fit on ``rows`` (all before ``now``): the reranker on an inner split, then the
    generators on everything. ``shared_at`` maps the catalog items to their share times."""
    params = params or LearnedParams()
    start = time.perf_counter()
    timings = Timings()
    booster = None
    data = LabelledSet()
    times = sorted(row.timestamp for row in rows)
    for k in range(params.label_windows):
        start_q = 1.0 - params.label_share - k * params.window_stride
        if start_q <= 0.05 or not times:
            break
        cut = times[int(len(times) * start_q)]
        end = times[min(len(times) - 1, int(len(times) * (start_q + params.label_share)))]
        end = now if k == 0 else end
        earlier = [r for r in rows if r.timestamp < cut]
        if not earlier:
            break
        inner = build_window(earlier, cut, {i: at for i, at in shared_at.items() if at < cut})
        timings.als_s += inner.als_seconds
        later = [r for r in rows if cut <= r.timestamp < end]
        part = _labelled(inner, later, params.per_source)
        data.features += part.features
        data.labels += part.labels
        data.users += part.users
    if data.users:
        begin = time.perf_counter()
        booster = _booster(data, params)
        timings.lgbm_s = time.perf_counter() - begin
    window = build_window(rows, now, shared_at)
    timings.als_s += window.als_seconds
    timings.total_s = time.perf_counter() - start
    return LearnedRanker(window, booster, params, timings)


def recommend_learned(
    train_rows: Sequence[Interaction], user_ids: Iterable[str], k: int = 50
) -> tuple[dict[str, list[str]], Timings]:
    """Top-``k`` unseen items per user from ``train_rows`` only; the catalog is every item of
    ``train_rows`` (share time = first interaction), the window ends one second after the last
    interaction. Cold users get decayed popularity."""
    users = list(user_ids)
    if not train_rows:
        return {user: [] for user in users}, Timings()
    now = max(row.timestamp for row in train_rows) + 1
    first: dict[str, int] = {}
    for row in train_rows:
        first[row.content_id] = min(first.get(row.content_id, row.timestamp), row.timestamp)
    ranker = fit_learned(train_rows, now=now, shared_at=first)
    return {user: ranker.rank(user, limit=k) for user in users}, ranker.timings
