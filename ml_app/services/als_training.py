"""Training ALS (implicit feedback) from the event log: gate, register, promote, precompute.

:func:`train_als` (nightly beat task ``inbo.ml.train_als`` and ``manage.py train_als``):

1. reads the window ``[now - days, now)`` of ``UserEvent`` once, less what readers asked to
   forget (before a reset; on an item of a removed category or provider before the
   removal: ``features.events_between(remembered=True)``, ADR 0023): every (user, item) pair's
   confidence is the sum of its positive events' weights (click, read by depth, save,
   share; ``als_candidates.event_confidence``), scaled by ``log1p`` (``ML_ALS_CONFIDENCE``);
   impressions, dismissals and hides add nothing (a dismissed item is only never proposed);
2. time split: a candidate is trained on ``[start, cut)`` and scored on ``[cut, now)``,
   which it never saw: nDCG@10 (and HR@10) of the validation users' positive items they
   had not engaged with before ``cut``, over a full ranking of the catalog the candidate
   knows, unseen items only. The baseline is the active version (each validation user
   folded in from their training-part events with its item factors) or, with none,
   popularity over the training part. ``cut`` is the later of ``now - share x days`` and
   the active version's ``trained_to`` (at most ``now - 1 day``), so neither side has
   seen the validation events (the nightly run validates on the last day). The gate passes
   when the candidate is strictly better on at least ``ML_ALS_GATE_MIN_USERS`` users;
3. the model that serves is refitted on the whole window, registered (kind ``"als"``,
   window, params, metrics, gate, sha256 by the registry) and promoted when the gate passed
   and ``promote``;
4. when the active version is the one just trained, every user of the window gets their
   candidates and every item its neighbours in Redis (``als_candidates``), and the fold-in
   watermark goes back to the last event the training read.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from experience_app import public as experience
from features_app import public as features
from inbo import keys
from inbo import redis as inbo_redis
from ml_app.als import AlsModel, AlsParams
from ml_app.ranking_metrics import hit_rate_at_k, ndcg_at_k
from ml_app.services.als_candidates import (
    FOLD_IN_JOB,
    KIND,
    NEGATIVE,
    POSITIVE,
    AlsArtifact,
    Busy,
    available_pool,
    confidence_weights,
    event_confidence,
    job_lock,
    scaled,
    write_neighbours,
    write_user_candidates,
)

logger = logging.getLogger(__name__)

TRAIN_JOB = "als_train"
K = 10
MIN_VALIDATION = timedelta(days=1)


@dataclass
class Window:
    """One pass over the window's events, split at ``cut``."""

    train: dict[tuple[int, int], float] = field(default_factory=dict)  # raw sums, < cut
    full: dict[tuple[int, int], float] = field(default_factory=dict)  # raw sums, whole window
    later: dict[int, set[int]] = field(default_factory=dict)  # positives >= cut
    seen: dict[int, set[int]] = field(default_factory=dict)  # engaged or rejected, whole
    events: int = 0
    last_id: int = 0


def read_window(
    since: datetime, cut: datetime, now: datetime, weights: Mapping[str, float]
) -> Window:
    train: defaultdict[tuple[int, int], float] = defaultdict(float)
    full: defaultdict[tuple[int, int], float] = defaultdict(float)
    later: defaultdict[int, set[int]] = defaultdict(set)
    seen: defaultdict[int, set[int]] = defaultdict(set)
    window = Window()
    # What readers asked to forget (a reset, a removed interest) is left out in SQL, so the
    # nightly model does not learn it back (ADR 0023).
    rows = features.events_between(
        since, now, event_types=[t.value for t in (*POSITIVE, *NEGATIVE)], remembered=True
    )
    for event_id, user_id, item_id, event_type, occurred_at, context in rows:
        window.events += 1
        window.last_id = max(window.last_id, event_id)
        seen[user_id].add(item_id)
        weight = event_confidence(event_type, context, weights)
        if weight <= 0:
            continue
        full[(user_id, item_id)] += weight
        if occurred_at < cut:
            train[(user_id, item_id)] += weight
        else:
            later[user_id].add(item_id)
    window.train, window.full, window.later, window.seen = (
        dict(train),
        dict(full),
        dict(later),
        dict(seen),
    )
    return window


def als_params() -> AlsParams:
    return AlsParams(
        factors=settings.ML_ALS_FACTORS,
        regularization=settings.ML_ALS_REGULARIZATION,
        alpha=settings.ML_ALS_ALPHA,
        iterations=settings.ML_ALS_ITERATIONS,
    )


def fit(pairs: Mapping[tuple[int, int], float], scaling: str, params: AlsParams) -> AlsModel:
    """ALS over the pairs' scaled confidence (ids as strings, as ``ml_app.als`` keeps them)."""
    return AlsModel.train(
        ((str(u), str(i), scaled(total, scaling)) for (u, i), total in pairs.items()), params
    )


def to_artifact(model: AlsModel, params: Mapping[str, Any]) -> AlsArtifact:
    return AlsArtifact(
        np.asarray([int(u) for u in model.users], dtype=np.int64),
        np.asarray([int(i) for i in model.items], dtype=np.int64),
        model.user_factors.astype(np.float32),
        model.item_factors.astype(np.float32),
        dict(params),
    )


@dataclass
class Validation:
    users: list[int]  # sorted, at most ML_ALS_GATE_MAX_USERS
    relevant: dict[int, set[str]]  # later positives not engaged with before cut
    history: dict[int, dict[int, float]]  # training-part pairs (scaled) per user


def validation_set(window: Window, model: AlsModel, scaling: str) -> Validation:
    history: defaultdict[int, dict[int, float]] = defaultdict(dict)
    for (u, i), total in window.train.items():
        history[u][i] = scaled(total, scaling)
    relevant = {
        u: {str(i) for i in items - set(history.get(u, {}))}
        for u, items in window.later.items()
        if str(u) in model.user_index
    }
    users = sorted(u for u, items in relevant.items() if items)
    cap = settings.ML_ALS_GATE_MAX_USERS
    if len(users) > cap:  # a deterministic spread over ids, not the first ``cap``
        users = users[:: -(-len(users) // cap)][:cap]
    return Validation(users, {u: relevant[u] for u in users}, dict(history))


def score(rankings: Mapping[int, list[str]], validation: Validation) -> dict[str, float]:
    n = max(1, len(validation.users))
    return {
        f"ndcg@{K}": sum(ndcg_at_k(rankings[u], validation.relevant[u], K) for u in rankings) / n,
        f"hr@{K}": sum(hit_rate_at_k(rankings[u], validation.relevant[u], K) for u in rankings) / n,
    }


def _candidate_rankings(model: AlsModel, validation: Validation) -> dict[int, list[str]]:
    """Each validation user's top ``K`` items they had not engaged with before the cut
    (``AlsModel.recommend`` in batches: one matrix product per chunk of users)."""
    out: dict[int, list[str]] = {}
    users = validation.users
    for start in range(0, len(users), 512):
        chunk = users[start : start + 512]
        rows = [model.user_index[str(u)] for u in chunk]
        scores = model.scores(rows).astype(np.float64)
        seen = model.user_items[rows]
        scores[seen.nonzero()] = -np.inf
        for n, u in enumerate(chunk):
            best = np.argsort(-scores[n], kind="stable")[:K]
            out[u] = [model.items[i] for i in best if np.isfinite(scores[n, i])]
    return out


def _active_rankings(artifact: AlsArtifact, validation: Validation) -> dict[int, list[str]]:
    vectors = artifact.fold_in({u: validation.history.get(u, {}) for u in validation.users})
    out: dict[int, list[str]] = {}
    rows = artifact.item_rows()
    for u in validation.users:
        if u not in vectors:
            out[u] = []  # the active version knows none of their items: it serves nothing
            continue
        scores = (artifact.item_factors @ vectors[u]).astype(np.float64)
        for item in validation.history.get(u, {}):
            if item in rows:
                scores[rows[item]] = -np.inf
        best = np.argsort(-scores, kind="stable")[:K]
        out[u] = [str(int(artifact.item_ids[i])) for i in best]
    return out


@dataclass
class TrainResult:
    """What one training did; ``version`` is None when nothing was trained."""

    version: Any
    gate: dict[str, Any]
    metrics: dict[str, Any]
    promoted: bool
    message: str
    written: int = 0
    neighbours: int = 0


def train_als(
    *,
    now: datetime | None = None,
    days: int | None = None,
    promote: bool | None = None,
    out: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train, gate, register (and promote, and precompute) an ALS version from the last
    ``days`` of events, under ``keys.learned_lock("als_train")`` (see the module docstring).
    Raises :class:`Busy` when another training runs."""
    now = now or timezone.now()
    days = days or settings.ML_ALS_TRAIN_DAYS
    promote = settings.ML_AUTO_PROMOTE if promote is None else promote
    say = out or (lambda line: logger.info("ml.als %s", line))
    with job_lock(TRAIN_JOB, settings.ML_ALS_LOCK_SECONDS):
        return _train(now, days, promote, say)


def _train(now: datetime, days: int, promote: bool, say: Callable[[str], None]) -> TrainResult:
    since = now - timedelta(days=days)
    weights, scaling, params = confidence_weights(), settings.ML_ALS_CONFIDENCE, als_params()
    active = experience.model_active(KIND)
    active_artifact = None
    if active is not None and active.artifact is not None:
        active_artifact = AlsArtifact.from_bytes(active.artifact)
    cut = now - timedelta(days=days * settings.ML_ALS_VALIDATION_SHARE)
    if active is not None:
        cut = max(cut, min(active.trained_to, now - MIN_VALIDATION))
    timings: dict[str, float] = {}

    started = time.perf_counter()
    window = read_window(since, cut, now, weights)
    timings["read_s"] = time.perf_counter() - started
    users = {u for u, _ in window.full}
    items = {i for _, i in window.full}
    say(
        f"events {since:%Y-%m-%d %H:%M} .. {now:%Y-%m-%d %H:%M}: {window.events} read, "
        f"{len(window.full)} pairs, {len(users)} users, {len(items)} items "
        f"({timings['read_s']:.1f} s)"
    )
    if not window.train or not window.full:
        message = "no positive events before the validation cut: nothing trained"
        say(message)
        return TrainResult(None, {}, {}, False, message)

    started = time.perf_counter()
    candidate = fit(window.train, scaling, params)
    timings["fit_candidate_s"] = time.perf_counter() - started
    validation = validation_set(window, candidate, scaling)
    started = time.perf_counter()
    ranked = _candidate_rankings(candidate, validation)
    popular = {
        u: candidate.popular(K, exclude=[str(i) for i in validation.history.get(u, {})])
        for u in validation.users
    }
    candidate_scores = score(ranked, validation)
    popularity_scores = score(popular, validation)
    active_scores: dict[str, float] | None = None
    if active_artifact is not None:
        active_scores = score(_active_rankings(active_artifact, validation), validation)
    timings["validate_s"] = time.perf_counter() - started
    metric = f"ndcg@{K}"
    baseline_name = active.label if active is not None else "popularity"
    baseline = (active_scores or popularity_scores)[metric]
    enough = len(validation.users) >= settings.ML_ALS_GATE_MIN_USERS
    passed = enough and candidate_scores[metric] > baseline
    gate = {
        "passed": passed,
        "metric": metric,
        "candidate": round(candidate_scores[metric], 4),
        "baseline": round(baseline, 4),
        "baseline_name": baseline_name,
        "baseline_version": active.id if active is not None else None,
        "popularity": round(popularity_scores[metric], 4),
        "validation": {
            "from": cut.isoformat(),
            "to": now.isoformat(),
            "users": len(validation.users),
        },
    }
    if not enough:
        gate["reason"] = (
            f"{len(validation.users)} validation users < {settings.ML_ALS_GATE_MIN_USERS}"
        )
    say(
        f"gate: nDCG@{K} {candidate_scores[metric]:.4f} (candidate) vs {baseline:.4f} "
        f"({baseline_name}) on {len(validation.users)} validation users -> "
        f"{'passed' if passed else 'failed'}"
        + (f" ({gate['reason']})" if not enough else "")
        + f" [HR@{K} {candidate_scores[f'hr@{K}']:.4f} vs popularity "
        f"{popularity_scores[f'hr@{K}']:.4f}]"
    )

    started = time.perf_counter()
    model = fit(window.full, scaling, params)
    timings["fit_s"] = time.perf_counter() - started
    record = {
        "factors": params.factors,
        "regularization": params.regularization,
        "alpha": params.alpha,
        "iterations": params.iterations,
        "seed": params.seed,
        "confidence": scaling,
        "weights": weights,
        "days": days,
    }
    artifact = to_artifact(model, record)
    metrics: dict[str, Any] = {
        "validation_candidate": {k: round(v, 4) for k, v in candidate_scores.items()},
        "validation_popularity": {k: round(v, 4) for k, v in popularity_scores.items()},
        "users": len(model.users),
        "items": len(model.items),
        "pairs": len(window.full),
        "events": window.events,
        "train_pairs": len(window.train),
        **{k: round(v, 2) for k, v in timings.items()},
    }
    if active_scores is not None:
        metrics["validation_active"] = {k: round(v, 4) for k, v in active_scores.items()}
    version = experience.model_register(
        KIND,
        artifact.to_bytes(),
        trained_from=since,
        trained_to=now,
        params=record,
        metrics=metrics,
        gate=gate,
    )
    say(
        f"registered {version.label} ({version.artifact_bytes} bytes; candidate fitted in "
        f"{timings['fit_candidate_s']:.1f} s, serving model in {timings['fit_s']:.1f} s)"
    )
    promoted = False
    if promote and passed:
        experience.model_promote(version.id, by="train_als")
        promoted = True
        say(f"promoted {version.label}")
    result = TrainResult(version, gate, metrics, promoted, "trained")
    now_active = experience.model_active(KIND)
    if now_active is not None and now_active.id == version.id:
        _precompute(artifact, window, now, result, say)
    return result


def _precompute(
    artifact: AlsArtifact,
    window: Window,
    now: datetime,
    result: TrainResult,
    say: Callable[[str], None],
) -> None:
    """Every window user's candidates and every item's neighbours, then the fold-in
    watermark back to the last event read (later events are folded in next minute). Held
    under the fold-in lock (waiting a little for a running fold-in to finish)."""
    started = time.perf_counter()
    pool = available_pool(artifact, now)
    vectors = {int(u): artifact.user_factors[n] for n, u in enumerate(artifact.user_ids)}
    for attempt in range(30):
        try:
            with job_lock(FOLD_IN_JOB, settings.ML_ALS_LOCK_SECONDS):
                result.written = write_user_candidates(artifact, vectors, window.seen, pool)
                result.neighbours = write_neighbours(artifact, pool)
                inbo_redis.state().set(keys.learned_watermark(FOLD_IN_JOB), window.last_id)
            break
        except Busy:
            if attempt == 29:
                raise
            time.sleep(2)
    elapsed = time.perf_counter() - started
    result.metrics["precompute_s"] = round(elapsed, 2)
    say(
        f"precomputed: {result.written} users' candidates and {result.neighbours} items' "
        f"neighbours over {len(pool)} available items ({elapsed:.1f} s)"
    )


__all__ = ["Busy", "TrainResult", "train_als"]
