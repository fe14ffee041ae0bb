"""MovieLens top-N evaluation: Gorse's random k-fold protocol and a global time split.

Gorse's protocol (``example/benchmark_ranking/main.go`` at ``f8db5822``): the ratings are
shuffled with a seed and cut into ``k`` equal folds; for each fold the model trains on the
other folds and, for every user of the test fold, ranks all items present in the test fold
minus the user's training items; every test rating is relevant whatever its value. NDCG@10
(binary) and P@10 (hits / 10) are averaged over the fold's users, then over folds.

The time split trains on ratings before a cut and tests after it. On ML-100K a global cut
mostly separates users (see the dataset README), so warm users (with training ratings) and
cold users (without) are reported apart; candidates are every training item minus the user's
training items, and cold users get the popularity ranking.

The ``ItemPop`` baseline (most rated in training first) is scored in the same run on the same
folds and candidates.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ml_app.als import AlsModel, AlsParams
from ml_app.datasets.movielens import Rating
from ml_app.ranking_metrics import ndcg_at_k, precision_at_k

K = 10


@dataclass(frozen=True, slots=True)
class Scores:
    """Mean NDCG@10 and P@10 over ``users`` users (``nan`` when there are none)."""

    ndcg: float
    precision: float
    users: int


@dataclass(frozen=True, slots=True)
class FoldResult:
    als: Scores
    pop: Scores
    train_seconds: float


def weight(rating: Rating) -> float:
    """Confidence of one rating for ALS: every rating is one positive (see ``ml_app.als``)."""
    return 1.0


def train_als(train: Sequence[Rating], params: AlsParams | None = None) -> AlsModel:
    return AlsModel.train(((r.user_id, r.item_id, weight(r)) for r in train), params)


def kfold(ratings: Sequence[Rating], folds: int, seed: int) -> list[list[Rating]]:
    """Shuffle with ``seed`` and cut into ``folds`` parts of (almost) equal size."""
    if folds < 2:
        raise ValueError("k-fold needs at least 2 folds")
    order = list(ratings)
    random.Random(seed).shuffle(order)
    return [order[i::folds] for i in range(folds)]


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _score_users(
    model: AlsModel,
    train_items: dict[str, set[str]],
    test_items: dict[str, set[str]],
    candidates: set[str],
) -> tuple[Scores, Scores]:
    """ALS and ItemPop scores for the users of ``test_items`` over ``candidates``.

    A user ALS was not trained on gets the popularity ranking in the ALS column too.
    """
    allowed = np.array([item in candidates for item in model.items], dtype=bool)
    # Candidates the model never saw cannot be scored by either model: they rank last,
    # which only lowers the figures (and is how Gorse's scorer treats unknown items).
    warm = [u for u in test_items if u in model.user_index]
    als_ndcg: list[float] = []
    als_prec: list[float] = []
    pop_ndcg: list[float] = []
    pop_prec: list[float] = []
    matrix = model.scores([model.user_index[u] for u in warm]) if warm else None
    for row, user in enumerate(warm):
        assert matrix is not None
        scores = np.where(allowed, matrix[row], -np.inf)
        for item in train_items.get(user, ()):
            index = model.item_index.get(item)
            if index is not None:
                scores[index] = -np.inf
        top = np.argsort(-scores, kind="stable")[:K]
        ranked = [model.items[i] for i in top if np.isfinite(scores[i])]
        als_ndcg.append(ndcg_at_k(ranked, test_items[user], K))
        als_prec.append(precision_at_k(ranked, test_items[user], K))
    for user, relevant in test_items.items():
        seen = train_items.get(user, set())
        ranked = [i for i in model.popular(len(model.items), exclude=seen) if i in candidates][:K]
        pop_ndcg.append(ndcg_at_k(ranked, relevant, K))
        pop_prec.append(precision_at_k(ranked, relevant, K))
        if user not in model.user_index:
            als_ndcg.append(pop_ndcg[-1])
            als_prec.append(pop_prec[-1])
    users = len(test_items)
    return (
        Scores(_mean(als_ndcg), _mean(als_prec), users),
        Scores(_mean(pop_ndcg), _mean(pop_prec), users),
    )


def _by_user(ratings: Sequence[Rating]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for r in ratings:
        out[r.user_id].add(r.item_id)
    return dict(out)


def evaluate_fold(
    train: Sequence[Rating], test: Sequence[Rating], params: AlsParams | None = None
) -> FoldResult:
    """Gorse's protocol on one fold: candidates are the test fold's items."""
    started = time.perf_counter()
    model = train_als(train, params)
    seconds = time.perf_counter() - started
    candidates = {r.item_id for r in test}
    als, pop = _score_users(model, _by_user(train), _by_user(test), candidates)
    return FoldResult(als, pop, seconds)


def evaluate_kfold(
    ratings: Sequence[Rating],
    folds: int = 5,
    seed: int = 0,
    params: AlsParams | None = None,
    on_fold: Callable[[int, FoldResult], None] | None = None,
) -> list[FoldResult]:
    """Every fold of Gorse's protocol; ``on_fold`` is called after each one."""
    parts = kfold(ratings, folds, seed)
    results: list[FoldResult] = []
    for index, test in enumerate(parts):
        train = [r for j, part in enumerate(parts) if j != index for r in part]
        result = evaluate_fold(train, test, params)
        results.append(result)
        if on_fold is not None:
            on_fold(index, result)
    return results


@dataclass(frozen=True, slots=True)
class TimeSplitResult:
    cut: int
    train_ratings: int
    test_ratings: int
    warm: FoldResult
    cold: Scores
    all_als: Scores
    all_pop: Scores


def default_cut(ratings: Sequence[Rating], share: float = 0.8) -> int:
    """The timestamp below which ``share`` of the ratings fall."""
    stamps = sorted(r.timestamp for r in ratings)
    return stamps[min(len(stamps) - 1, int(len(stamps) * share))]


def evaluate_time_split(
    ratings: Sequence[Rating], cut: int, params: AlsParams | None = None
) -> TimeSplitResult:
    """Train before ``cut``, test from ``cut`` on, over every training item (warm/cold apart)."""
    train = [r for r in ratings if r.timestamp < cut]
    test = [r for r in ratings if r.timestamp >= cut]
    if not train or not test:
        raise ValueError("the cut leaves no training or no test ratings")
    started = time.perf_counter()
    model = train_als(train, params)
    seconds = time.perf_counter() - started
    train_items = _by_user(train)
    test_items = _by_user(test)
    candidates = set(model.items)
    warm_users = {u: s for u, s in test_items.items() if u in model.user_index}
    cold_users = {u: s for u, s in test_items.items() if u not in model.user_index}
    warm_als, warm_pop = _score_users(model, train_items, warm_users, candidates)
    _, cold_pop = _score_users(model, train_items, cold_users, candidates)
    all_als, all_pop = _score_users(model, train_items, test_items, candidates)
    return TimeSplitResult(
        cut=cut,
        train_ratings=len(train),
        test_ratings=len(test),
        warm=FoldResult(warm_als, warm_pop, seconds),
        cold=cold_pop,
        all_als=all_als,
        all_pop=all_pop,
    )
