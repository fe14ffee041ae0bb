"""What training the learned models costs: ALS and LightGBM lambdarank time per dataset.

Timed by ``manage.py bench_ml`` (and ``make bench-ml``, which adds the serving costs), never
by tests. Each dataset is read with ml_app's reader, outside the timed part:

- **ALS** (:class:`ml_app.als.AlsModel`, its default parameters, one thread as always):
  MovieLens 100K, every rating of ``u.data.dev`` one positive; DeskDrop, every interaction
  of ``users_interactions_dev.csv`` with its event-type strength (repeated pairs add up);
  MIND, the clicked news of every impression and of every user's history.
- **LightGBM lambdarank** with the reranker's parameters (``reranker_training.PARAMS``) for
  its maximum number of rounds (no early stopping: the longest a training can take), on
  rows of the reranker's feature set (``experience_app.public.FEATURES``). The feature
  values are synthetic (the served log of each dataset's replay is not needed to know
  what training costs); the groups have the dataset's shape: MIND, its real impressions
  (one group per impression, its candidates, clicked or not); MovieLens and DeskDrop, one
  group per user of ``GROUP_SIZE`` candidates, labels drawn at the dataset's positive rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

from experience_app import public as experience
from ml_app.als import AlsModel
from ml_app.datasets import deskdrop, mind, movielens
from ml_app.services.reranker_training import MAX_ROUNDS, PARAMS

GROUP_SIZE = 100  # candidates per user group (MovieLens, DeskDrop)
Triple = tuple[str, str, float]


@dataclass(frozen=True, slots=True)
class Shape:
    """What one dataset trains on: ALS triples and the lambdarank groups' sizes and labels."""

    name: str
    triples: list[Triple]
    group_sizes: list[int]
    labels: np.ndarray


@dataclass(frozen=True, slots=True)
class Timing:
    dataset: str
    als_pairs: int
    als_users: int
    als_items: int
    als_seconds: float
    als_cpu_seconds: float
    gbm_rows: int
    gbm_groups: int
    gbm_rounds: int
    gbm_threads: int
    gbm_seconds: float
    gbm_cpu_seconds: float


def _user_groups(name: str, triples: list[Triple], positive_rate: float, seed: int) -> Shape:
    users = sorted({u for u, _, _ in triples})
    rng = np.random.default_rng(seed)
    labels = (rng.random(len(users) * GROUP_SIZE) < positive_rate).astype(np.int32)
    return Shape(name, triples, [GROUP_SIZE] * len(users), labels)


def movielens_shape(folder: Path, seed: int = 0) -> Shape:
    triples = [(r.user_id, r.item_id, 1.0) for r in movielens.read_ratings(folder / "u.data.dev")]
    users = len({u for u, _, _ in triples})
    items = len({i for _, i, _ in triples})
    # A user's share of the catalog they rated: the positives among their candidates.
    return _user_groups("movielens_100k", triples, len(triples) / (users * items), seed)


def deskdrop_shape(folder: Path, seed: int = 0) -> Shape:
    read = deskdrop.read_interactions(folder / "users_interactions_dev.csv")
    triples = [(r.person_id, r.content_id, r.strength) for r in read.rows]
    users = len({u for u, _, _ in triples})
    items = len({i for _, i, _ in triples})
    pairs = len({(u, i) for u, i, _ in triples})
    return _user_groups("deskdrop", triples, pairs / (users * items), seed)


def _mind_behaviors(path: Path) -> Iterator[mind.Behavior]:
    for _, _, text in mind.read_lines(path):
        if not text or not text.strip():
            continue
        try:
            yield mind.parse_behavior_line(text.rstrip("\n"))
        except mind.LineError:
            continue


def mind_shape(folder: Path, seed: int = 0) -> Shape:
    triples: list[Triple] = []
    sizes: list[int] = []
    labels: list[int] = []
    histories: dict[str, tuple[str, ...]] = {}
    for b in _mind_behaviors(folder / "behaviors_dev.tsv"):
        histories[b.user_id] = b.history
        sizes.append(len(b.candidates))
        labels += [int(c.clicked) for c in b.candidates]
        triples += [(b.user_id, c.news_id, 1.0) for c in b.candidates if c.clicked]
    for user, history in histories.items():
        triples += [(user, news, 1.0) for news in history]
    return Shape("mind_small_subset", triples, sizes, np.asarray(labels, dtype=np.int32))


READERS: dict[str, Callable[[Path, int], Shape]] = {
    "movielens_100k": movielens_shape,
    "deskdrop": deskdrop_shape,
    "mind_small_subset": mind_shape,
}
NEEDS = {
    "movielens_100k": "u.data.dev",
    "deskdrop": "users_interactions_dev.csv",
    "mind_small_subset": "behaviors_dev.tsv",
}


def synthetic_features(rows: int, seed: int = 0) -> np.ndarray:
    """Rows of the reranker's features in their served ranges (``als`` and ``similarity``
    missing for part of them, as for items without an ALS score or an embedding)."""
    rng = np.random.default_rng(seed)
    features = experience.FEATURES
    x = rng.random((rows, len(features)))
    for name, missing in (("als", 0.4), ("similarity", 0.3)):
        x[rng.random(rows) < missing, features.index(name)] = np.nan
    return x


def time_als(shape: Shape) -> tuple[AlsModel, float, float]:
    """The trained model, wall seconds and CPU seconds (this process, all threads)."""
    started, cpu = time.perf_counter(), time.process_time()
    model = AlsModel.train(shape.triples)
    return model, time.perf_counter() - started, time.process_time() - cpu


def time_lambdarank(
    shape: Shape, *, rounds: int, threads: int, seed: int = 0
) -> tuple[float, float]:
    """Wall seconds and CPU seconds of building the dataset and training."""
    x = synthetic_features(len(shape.labels), seed)
    # Nudge the features towards the labels so the trees split as on real data.
    x[:, 0] += shape.labels * 0.5
    started, cpu = time.perf_counter(), time.process_time()
    data = lgb.Dataset(x, label=shape.labels, group=shape.group_sizes)
    lgb.train({**PARAMS, "num_threads": threads}, data, num_boost_round=rounds)
    return time.perf_counter() - started, time.process_time() - cpu


def bench_dataset(
    name: str, folder: Path, *, rounds: int = MAX_ROUNDS, threads: int = 1, seed: int = 0
) -> Timing:
    shape = READERS[name](folder, seed)
    model, als_seconds, als_cpu = time_als(shape)
    gbm_seconds, gbm_cpu = time_lambdarank(shape, rounds=rounds, threads=threads, seed=seed)
    return Timing(
        dataset=name,
        als_pairs=int(model.user_items.nnz),
        als_users=len(model.users),
        als_items=len(model.items),
        als_seconds=round(als_seconds, 2),
        als_cpu_seconds=round(als_cpu, 2),
        gbm_rows=len(shape.labels),
        gbm_groups=len(shape.group_sizes),
        gbm_rounds=rounds,
        gbm_threads=threads,
        gbm_seconds=round(gbm_seconds, 2),
        gbm_cpu_seconds=round(gbm_cpu, 2),
    )


def available(root: Path, name: str) -> bool:
    return (root / name / NEEDS[name]).is_file()
