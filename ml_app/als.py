"""Implicit-feedback ALS (WRMF) with ``implicit``: train, recommend, fold in, item neighbours.

Trained from ``(user, item, weight)`` triples; a weight is the confidence of one observed
interaction (repeated pairs add up). Ids are strings, as in the files and in INBO; the model
keeps its own dense indexes. Everything runs on the CPU with one thread (``implicit`` and the
BLAS behind numpy), so a run is deterministic for a seed and CI stays stable.

Chosen hyperparameters (``AlsParams`` defaults), tuned only on the MovieLens 100K dev portion
(``u.data.dev``) with Gorse's protocol (random 5-fold, full ranking over the test fold's items
minus the user's training items, NDCG@10; ``manage.py evaluate_movielens``), never on held-out
data:

- ``factors=64``: 32 scored ~0.005 NDCG@10 lower, 128 the same and 1.5x slower;
- ``alpha=5.0`` and ``regularization=30.0``, with weight ``1`` per rating (confidence is
  ``alpha * weight`` in ``implicit`` 0.7). What mattered is the ratio regularization/alpha:
  at alpha 10, regularization 30/40/50/60/100 gave NDCG@10 0.392/0.416/0.430/0.429/0.380,
  and the small values common for ALS (0.05 to 5) only 0.31 to 0.38; alpha 40 overfits
  (0.263). A ratio near 6 (20/3, 30/5, 50/10, 60/10) gave 0.427 to 0.432; 30/5 is the best
  of the grid (0.432, P@10 0.361). Every rating counts as one positive, as the protocol
  scores every rating as relevant;
- ``iterations=15``: 30 changed nothing beyond the third decimal and doubles the time.

The measured figures are in ``docs/ML.md`` ("MovieLens 100K").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from implicit.cpu.als import AlternatingLeastSquares
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits


@dataclass(frozen=True, slots=True)
class AlsParams:
    """ALS hyperparameters (see the module docstring for why these defaults)."""

    factors: int = 64
    regularization: float = 30.0
    alpha: float = 5.0
    iterations: int = 15
    seed: int = 0


class UnknownUser(KeyError):
    """A user the model was not trained on (a cold user): use a popularity fallback."""


class AlsModel:
    """A trained ALS model over string ids, with the training interactions it saw."""

    def __init__(
        self,
        model: AlternatingLeastSquares,
        users: list[str],
        items: list[str],
        user_items: csr_matrix,
    ) -> None:
        self._model = model
        self.users = users
        self.items = items
        self.user_index = {u: i for i, u in enumerate(users)}
        self.item_index = {it: i for i, it in enumerate(items)}
        self.user_items = user_items
        counts = np.asarray((user_items > 0).sum(axis=0)).ravel()
        # Most interacted first; ties by item id so the order never depends on the input order.
        self._popular = sorted(range(len(items)), key=lambda i: (-counts[i], items[i]))

    @classmethod
    def train(
        cls, triples: Iterable[tuple[str, str, float]], params: AlsParams | None = None
    ) -> AlsModel:
        """Fit on ``(user, item, weight)`` triples; weights of a repeated pair add up."""
        params = params or AlsParams()
        weights: defaultdict[tuple[str, str], float] = defaultdict(float)
        for user, item, weight in triples:
            if weight > 0:
                weights[(user, item)] += weight
        if not weights:
            raise ValueError("ALS needs at least one interaction with a positive weight")
        users = sorted({u for u, _ in weights})
        items = sorted({i for _, i in weights})
        user_index = {u: i for i, u in enumerate(users)}
        item_index = {it: i for i, it in enumerate(items)}
        rows = [user_index[u] for u, _ in weights]
        cols = [item_index[i] for _, i in weights]
        data = np.fromiter(weights.values(), dtype=np.float32, count=len(weights))
        matrix = csr_matrix((data, (rows, cols)), shape=(len(users), len(items)), dtype=np.float32)
        with threadpool_limits(limits=1):
            model = AlternatingLeastSquares(
                factors=params.factors,
                regularization=params.regularization,
                alpha=params.alpha,
                iterations=params.iterations,
                random_state=params.seed,
                num_threads=1,
            )
            model.fit(matrix, show_progress=False)
        return cls(model, users, items, matrix)

    @property
    def user_factors(self) -> np.ndarray:
        return np.asarray(self._model.user_factors)

    @property
    def item_factors(self) -> np.ndarray:
        return np.asarray(self._model.item_factors)

    def popular(self, n: int, exclude: Iterable[str] = ()) -> list[str]:
        """The ``n`` items most users interacted with in training, minus ``exclude``."""
        skip = set(exclude)
        out: list[str] = []
        for i in self._popular:
            if self.items[i] not in skip:
                out.append(self.items[i])
                if len(out) == n:
                    break
        return out

    def scores(self, user_rows: Sequence[int]) -> np.ndarray:
        """Dot-product scores of the given user rows against every item (users x items)."""
        with threadpool_limits(limits=1):
            return self.user_factors[list(user_rows)] @ self.item_factors.T

    def recommend(self, user: str, n: int = 10) -> list[tuple[str, float]]:
        """Top ``n`` items the user did not interact with in training, best first.

        Raises :class:`UnknownUser` for a user not seen in training.
        """
        if user not in self.user_index:
            raise UnknownUser(user)
        row = self.user_index[user]
        with threadpool_limits(limits=1):
            ids, scores = self._model.recommend(
                row, self.user_items[row], N=n, filter_already_liked_items=True
            )
        return [(self.items[i], float(s)) for i, s in zip(ids, scores, strict=True)]

    def fold_in(
        self, user: str, interactions: Iterable[tuple[str, float]], n: int = 10
    ) -> list[tuple[str, float]]:
        """Recommend for a user from ``interactions`` without retraining the item factors.

        The user's vector is solved afresh against the fixed item factors (``implicit``'s
        ``recalculate_user``), from the given interactions only (pass the old ones too to keep
        them). Items the model never saw are ignored; the model itself is not changed.
        """
        weights: defaultdict[int, float] = defaultdict(float)
        for item, weight in interactions:
            if item in self.item_index and weight > 0:
                weights[self.item_index[item]] += weight
        if not weights:
            raise UnknownUser(user)
        cols = list(weights)
        data = np.fromiter(weights.values(), dtype=np.float32, count=len(cols))
        row = csr_matrix(
            (data, ([0] * len(cols), cols)), shape=(1, len(self.items)), dtype=np.float32
        )
        with threadpool_limits(limits=1):
            ids, scores = self._model.recommend(
                0, row, N=n, filter_already_liked_items=True, recalculate_user=True
            )
        return [(self.items[i], float(s)) for i, s in zip(ids, scores, strict=True)]

    def similar_items(self, item: str, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` nearest items by cosine of the item factors, the item itself excluded."""
        if item not in self.item_index:
            raise KeyError(item)
        with threadpool_limits(limits=1):
            ids, scores = self._model.similar_items(self.item_index[item], N=n + 1)
        own = self.item_index[item]
        return [(self.items[i], float(s)) for i, s in zip(ids, scores, strict=True) if i != own][:n]
