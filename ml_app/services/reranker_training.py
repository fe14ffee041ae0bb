"""Training the learned reranker (LightGBM ``lambdarank``) from the served log.

The training set is what the product served: every served response is a query group, every
shown item a row of the features it was ranked on, logged at serve time
(``ServedFeed.items[*].signals``, in the order of ``experience_app.public.FEATURES``), so
the features are point-in-time correct and the same as serving computes. Labels are what
the user then did with the item (interactions within ``LABEL_WINDOW`` of the response):

====  ==========================================================  ====
grade what happened                                                gain
====  ==========================================================  ====
0     dismissed or hidden                                          0
1     shown, nothing else                                          0.25
2     clicked, read less than half                                 3
3     clicked and read at least half (reading progress)           7
4     read to the end                                              15
5     saved or shared                                              31
====  ==========================================================  ====

so a dismissal ranks below an item merely ignored. The model is boosted from the linear
ranking (LightGBM's ``init_score`` is each row's linear score, and serving adds the linear
score back): it learns corrections to what the product ranks with today, so a model with
little to learn stays close to it instead of below it. The gate is a time split: the model is
trained on the earlier responses (early stopping on the last tenth of those) and scored on
the later ones, which it never saw, against the active version (or, with none, the linear
ranking) on exactly the same responses. The version registered is the one the gate scored.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import lightgbm as lgb
import numpy as np
from django.conf import settings
from django.utils import timezone

from experience_app import public as experience
from features_app.contracts import EventType
from reading_app import public as reading

logger = logging.getLogger(__name__)

KIND = "reranker"
LABEL_WINDOW = timedelta(hours=24)
LABEL_GAIN = [0.0, 0.25, 3.0, 7.0, 15.0, 31.0]
GRADE = {
    EventType.DISMISS: 0,
    EventType.HIDE: 0,
    EventType.CLICK: 2,
    EventType.READ: 4,
    EventType.SAVE: 5,
    EventType.SHARE: 5,
}
NEGATIVE = {EventType.DISMISS, EventType.HIDE}
VALIDATION_SHARE = 0.2
PARAMS: dict[str, Any] = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [10],
    "label_gain": LABEL_GAIN,
    "learning_rate": 0.1,
    "num_leaves": 7,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.9,
    "lambdarank_truncation_level": 20,
    "deterministic": True,
    "force_row_wise": True,
    "seed": 0,
    "verbosity": -1,
}
# Serving cost grows with the trees and their leaves (explaining one item walks every path
# of every tree: 7 leaves explain 3x faster than 15): at most 100 trees of 7 leaves
# (docs/BENCHMARKS.md, "ML costs").
MAX_ROUNDS = 100


@dataclass
class Groups:
    """Query groups: feature rows, grades and the served time of each group."""

    rows: list[list[float]] = field(default_factory=list)
    grades: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    served_at: list[datetime] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sizes)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.asarray(self.rows, dtype=np.float64).reshape(-1, len(experience.FEATURES)),
            np.asarray(self.grades, dtype=np.int32),
            np.asarray(self.sizes, dtype=np.int32),
        )

    def split(self, share: float) -> tuple[Groups, Groups]:
        """(earlier, later): the last ``share`` of groups by served time go to ``later``."""
        cut = len(self) - max(1, round(len(self) * share))
        offsets = np.concatenate([[0], np.cumsum(self.sizes)])
        first, second = Groups(), Groups()
        for i in range(len(self)):
            part = first if i < cut else second
            lo, hi = offsets[i], offsets[i + 1]
            part.rows.extend(self.rows[lo:hi])
            part.grades.extend(self.grades[lo:hi])
            part.sizes.append(self.sizes[i])
            part.served_at.append(self.served_at[i])
        return first, second


def grade_of(types: set[str], depth: float | None) -> int:
    """The grade of one shown item from what the user did with it (table above)."""
    if types & NEGATIVE:
        return 0
    best = 1
    for t in types:
        best = max(best, GRADE.get(EventType(t), 1))
    if best == 2 and depth is not None and depth >= 0.5:
        best = 3
    return best


def collect(since: datetime, until: datetime, *, max_groups: int) -> Groups:
    """The labelled groups of responses served in ``[since, until)``.

    Only responses with at least two distinct grades teach a ranking; the others are left
    out. Interactions are read up to ``LABEL_WINDOW`` past ``until``.
    """
    acted: dict[tuple[int, int], list[tuple[datetime, str]]] = defaultdict(list)
    for user_id, item_id, kind, occurred_at, _request in experience.interactions_between(
        since, until + LABEL_WINDOW
    ):
        acted[(user_id, item_id)].append((occurred_at, kind))
    served = list(experience.served_between(since, until, limit=max_groups))
    depths = reading.reading_depths(
        user_ids={s[1] for s in served},
        item_ids={i["item_id"] for s in served for i in s[4]},
    )
    groups = Groups()
    for _request_id, user_id, served_at, _ranker, items in served:
        rows, grades = [], []
        seen: set[int] = set()
        for item in items:
            item_id = item["item_id"]
            if item_id in seen:
                continue
            seen.add(item_id)
            types = {
                kind
                for at, kind in acted.get((user_id, item_id), ())
                if served_at <= at < served_at + LABEL_WINDOW
            }
            grades.append(grade_of(types, depths.get((user_id, item_id))))
            rows.append(experience.feature_vector(item.get("signals", {})))
        if len(set(grades)) < 2:
            continue
        groups.rows.extend(rows)
        groups.grades.extend(grades)
        groups.sizes.append(len(rows))
        groups.served_at.append(served_at)
    return groups


def ndcg_at(scores: np.ndarray, grades: np.ndarray, sizes: np.ndarray, k: int = 10) -> float:
    """Mean nDCG@k over groups with the gains of ``LABEL_GAIN`` (ties broken by position)."""
    gain = np.asarray(LABEL_GAIN)
    total, n, lo = 0.0, 0, 0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for size in sizes:
        s, g = scores[lo : lo + size], gain[grades[lo : lo + size]]
        lo += size
        ideal = np.sort(g)[::-1][:k]
        idcg = float((ideal * discounts[: len(ideal)]).sum())
        if idcg == 0:
            continue
        order = np.argsort(-s, kind="stable")[:k]
        total += float((g[order] * discounts[: len(order)]).sum()) / idcg
        n += 1
    return total / n if n else 0.0


def linear_scores(rows: np.ndarray) -> np.ndarray:
    """The linear ranking's scores recomputed from the logged features with today's weights
    (the logged score may be a model's)."""
    w = experience.Weights.from_settings()
    column = {name: i for i, name in enumerate(experience.FEATURES)}

    def col(name: str) -> np.ndarray:
        return np.nan_to_num(rows[:, column[name]], nan=0.0)

    return (
        w.popularity * col("popularity")
        + w.freshness * col("freshness")
        + w.affinity * col("affinity")
        + w.provider_affinity * col("provider_affinity")
        + w.subscribed * col("subscribed")
        - w.seen * col("seen")
        + w.similarity * col("similarity")
    )


def fit(train: Groups, *, threads: int) -> tuple[lgb.Booster, int]:
    """A lambdarank booster of corrections to the linear ranking (``init_score``); early
    stopping on the last tenth of ``train`` (by time)."""
    fit_part, stop_part = train.split(0.1)
    x, y, q = fit_part.arrays()
    xs, ys, qs = stop_part.arrays()
    names = list(experience.FEATURES)
    data = lgb.Dataset(
        x, y, group=q, init_score=linear_scores(x), feature_name=names, free_raw_data=False
    )
    valid = lgb.Dataset(
        xs, ys, group=qs, init_score=linear_scores(xs), feature_name=names, reference=data
    )
    booster = lgb.train(
        {**PARAMS, "num_threads": threads},
        data,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[valid],
        callbacks=[lgb.early_stopping(30, verbose=False)],
    )
    return booster, booster.best_iteration or MAX_ROUNDS


@dataclass(frozen=True)
class TrainingResult:
    version: Any | None
    gate: Mapping[str, Any]
    metrics: Mapping[str, Any]
    promoted: bool
    message: str


def _baseline(rows: np.ndarray) -> tuple[np.ndarray, str, int | None]:
    """Scores of the version now active on ``rows`` (or the linear ranking)."""
    active = experience.model_active(KIND)
    if active is not None:
        try:
            model = experience.load_artifact(active)
        except experience.ArtifactError as exc:
            logger.warning("ml.reranker_active_unusable model=%s reason=%s", active.label, exc)
        else:
            column = {name: i for i, name in enumerate(experience.FEATURES)}
            picked = rows[:, [column[f] for f in model.features]]
            scores = np.asarray(model.booster.predict(picked, num_threads=1))
            if model.boost_from_linear:
                scores = scores + linear_scores(rows)
            return scores, active.label, active.id
        # An unusable active version is no bar: compare with what serving falls back to.
        return linear_scores(rows), "linear (active unusable)", active.id
    return linear_scores(rows), "linear", None


def train_reranker(
    *,
    now: datetime | None = None,
    days: int | None = None,
    promote: bool | None = None,
    min_groups: int = 50,
    out: Any = None,
) -> TrainingResult:
    """Train, gate and register a reranker version from the last ``days`` of the served log;
    promote it when its gate passed and ``promote`` (default ``ML_AUTO_PROMOTE``)."""
    now = now or timezone.now()
    days = days or settings.ML_RERANKER_TRAIN_DAYS
    promote = settings.ML_AUTO_PROMOTE if promote is None else promote
    since = now - timedelta(days=days)
    # Responses younger than the label window are not fully labelled yet.
    until = now - LABEL_WINDOW
    say = out or (lambda line: logger.info("ml.reranker %s", line))

    started = time.perf_counter()
    groups = collect(since, until, max_groups=settings.ML_RERANKER_MAX_GROUPS)
    collect_s = time.perf_counter() - started
    say(
        f"served log {since:%Y-%m-%d %H:%M} .. {until:%Y-%m-%d %H:%M}: {len(groups)} "
        f"labelled responses, {len(groups.grades)} rows ({collect_s:.1f} s)"
    )
    if len(groups) < min_groups:
        message = f"not enough labelled responses ({len(groups)} < {min_groups}): nothing trained"
        say(message)
        return TrainingResult(None, {}, {}, False, message)

    train, validation = groups.split(VALIDATION_SHARE)
    started = time.perf_counter()
    booster, rounds = fit(train, threads=settings.ML_TRAIN_THREADS)
    train_s = time.perf_counter() - started
    xv, yv, qv = validation.arrays()
    candidate = ndcg_at(np.asarray(booster.predict(xv, num_threads=1)) + linear_scores(xv), yv, qv)
    linear = ndcg_at(linear_scores(xv), yv, qv)
    base_scores, base_name, base_version = _baseline(xv)
    baseline = ndcg_at(base_scores, yv, qv)
    passed = candidate > baseline
    gate = {
        "passed": passed,
        "metric": "ndcg@10",
        "candidate": round(candidate, 4),
        "baseline": round(baseline, 4),
        "baseline_name": base_name,
        "baseline_version": base_version,
        "linear": round(linear, 4),
        "validation": {
            "from": validation.served_at[0].isoformat(),
            "to": validation.served_at[-1].isoformat(),
            "responses": len(validation),
            "rows": len(validation.grades),
        },
    }
    say(
        f"gate: nDCG@10 {candidate:.4f} (candidate) vs {baseline:.4f} ({base_name}) on "
        f"{len(validation)} later responses it was not trained on -> "
        f"{'passed' if passed else 'failed'} (linear {linear:.4f})"
    )
    metrics = {
        "ndcg@10_validation": round(candidate, 4),
        "train_responses": len(train),
        "train_rows": len(train.grades),
        "rounds": rounds,
        "train_seconds": round(train_s, 2),
        "importance_gain": {
            name: round(float(v), 2)
            for name, v in zip(experience.FEATURES, booster.feature_importance("gain"), strict=True)
        },
    }
    version = experience.model_register(
        KIND,
        booster.model_to_string(num_iteration=rounds).encode(),
        trained_from=train.served_at[0],
        trained_to=train.served_at[-1] + timedelta(microseconds=1),
        params={
            **PARAMS,
            "num_boost_round": rounds,
            "init_score": "linear",
            "linear_weights": asdict(experience.Weights.from_settings()),
        },
        metrics=metrics,
        gate=gate,
        features=experience.FEATURES,
    )
    say(
        f"registered {version.label} ({version.artifact_bytes} bytes, {rounds} trees, "
        f"trained in {train_s:.1f} s)"
    )
    promoted = False
    if promote and passed:
        experience.model_promote(version.id, by="train_reranker")
        promoted = True
        say(f"promoted {version.label}")
    return TrainingResult(version, gate, metrics, promoted, "trained")
