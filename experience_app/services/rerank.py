"""Serving the learned reranker: load the active version, score a ranked candidate set.

Each web worker keeps the loaded model of the active ``reranker`` version in memory and asks
the registry which version is active at most every ``ML_MODEL_RELOAD_SECONDS`` (one indexed
query), so a promotion or rollback reaches every worker within seconds, without a restart.

A version whose artifact is missing, fails its checksum or cannot be read is skipped for
the version it replaced, and so on down the chain; with none left the feed keeps the linear
ranking. Each skip is logged (``experience.model_fallback``) and sent as the
``model_fallback`` signal (monitoring counts it); a request never fails for a model.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
from django.conf import settings
from django.db import DatabaseError

from experience_app.contracts import model_fallback, model_loaded
from experience_app.learned import FEATURES, feature_vector
from experience_app.models import ModelVersion
from experience_app.ranking import Scored, Weights, linear_score
from experience_app.services import registry

logger = logging.getLogger(__name__)

KIND = ModelVersion.Kind.RERANKER
# How many contributions an item's explanation names.
TOP_FEATURES = 3
# How far down the chain of previous versions a load may fall back.
MAX_FALLBACK_DEPTH = 5


class ArtifactError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LoadedModel:
    version_id: int
    label: str
    booster: lgb.Booster
    features: tuple[str, ...]
    # Trained as corrections to the linear ranking (``init_score``): its raw output is
    # added to the linear score.
    boost_from_linear: bool = False


def load_artifact(version: ModelVersion) -> LoadedModel:
    """The booster of ``version``, checked; ArtifactError (with a reason) when unusable."""
    raw = version.artifact
    if raw is None or len(raw) == 0:
        raise ArtifactError("missing")
    data = bytes(raw)
    if hashlib.sha256(data).hexdigest() != version.artifact_sha256:
        raise ArtifactError("checksum", f"{version.label} does not match its sha256")
    features = tuple(version.features or ())
    if not features or not set(features) <= set(FEATURES):
        raise ArtifactError("features", f"{version.label} expects {features}")
    try:
        booster = lgb.Booster(model_str=data.decode())
    except (lgb.basic.LightGBMError, UnicodeDecodeError, ValueError) as exc:
        raise ArtifactError("unreadable", str(exc)[:200]) from None
    if booster.num_feature() != len(features):
        raise ArtifactError("features", f"{booster.num_feature()} inputs, {len(features)} named")
    boost = (version.params or {}).get("init_score") == "linear"
    return LoadedModel(version.id, version.label, booster, features, boost)


class _Holder:
    """The process's loaded reranker and when the registry was last asked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked_at = -math.inf
        self.active_id: int | None = None
        self.model: LoadedModel | None = None

    def reset(self) -> None:
        with self.lock:
            self.checked_at = -math.inf
            self.active_id = None
            self.model = None


_holder = _Holder()


def reset() -> None:
    """Forget the loaded models (tests; the next call asks the registry again)."""
    _holder.reset()
    with _pinned.lock:
        _pinned.models.clear()


def _load_chain(active_id: int) -> LoadedModel | None:
    version_id: int | None = active_id
    for _ in range(MAX_FALLBACK_DEPTH):
        if version_id is None:
            break
        version = ModelVersion.objects.filter(id=version_id).first()
        if version is None:
            break
        try:
            model = load_artifact(version)
        except ArtifactError as exc:
            logger.error(
                "experience.model_fallback kind=%s version=%s reason=%s detail=%s",
                KIND,
                version.label,
                exc.reason,
                exc,
            )
            model_fallback.send(sender=ModelVersion, kind=KIND, reason=exc.reason)
            version_id = version.previous_id
            continue
        model_loaded.send(sender=ModelVersion, kind=KIND, version=version.version)
        logger.info("experience.model_loaded model=%s", model.label)
        return model
    logger.error("experience.model_fallback kind=%s to=linear", KIND)
    return None


def current() -> LoadedModel | None:
    """The reranker this process serves now (None: the linear ranking)."""
    if not settings.ML_RERANKER_ENABLED:
        return None
    now = time.monotonic()
    holder = _holder
    if now - holder.checked_at < settings.ML_MODEL_RELOAD_SECONDS:
        return holder.model
    with holder.lock:
        if now - holder.checked_at < settings.ML_MODEL_RELOAD_SECONDS:
            return holder.model
        try:
            active_id = registry.active_id(KIND)
            if active_id != holder.active_id:
                holder.model = _load_chain(active_id) if active_id is not None else None
                holder.active_id = active_id
        except DatabaseError as exc:
            # Keep serving what is loaded; ask again at the next interval.
            logger.warning("experience.model_check_failed error=%s", exc)
        holder.checked_at = now
        return holder.model


class _Pinned:
    """Versions an experiment's variant names (``"reranker:v3"``), loaded once per process
    and checked again every ``ML_MODEL_RELOAD_SECONDS`` (a version may be deleted)."""

    LIMIT = 8  # distinct versions kept; variants name one or two

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.models: dict[str, tuple[float, LoadedModel | None]] = {}


_pinned = _Pinned()


def pinned(label: str) -> LoadedModel | None:
    """The reranker version ``label`` (``"reranker:v<N>"``) whatever its status, or None
    (unknown, unusable: the variant is served the linear ranking, logged as a fallback)."""
    now = time.monotonic()
    hit = _pinned.models.get(label)
    if hit is not None and now - hit[0] < settings.ML_MODEL_RELOAD_SECONDS:
        return hit[1]
    kind, _, number = label.partition(":v")
    model: LoadedModel | None = None
    if kind == KIND and number.isdigit() and len(number) <= 9:
        try:
            version = ModelVersion.objects.filter(kind=KIND, version=int(number)).first()
            if version is not None:
                model = load_artifact(version)
        except ArtifactError as exc:
            logger.error("experience.model_fallback model=%s reason=%s", label, exc.reason)
            model_fallback.send(sender=ModelVersion, kind=KIND, reason=exc.reason)
        except DatabaseError as exc:
            logger.warning("experience.model_check_failed error=%s", exc)
            return hit[1] if hit is not None else None
    with _pinned.lock:
        if len(_pinned.models) >= _Pinned.LIMIT and label not in _pinned.models:
            _pinned.models.clear()
        _pinned.models[label] = (now, model)
    return model


def rerank(ranked: Sequence[Scored], model: LoadedModel) -> list[Scored]:
    """``ranked`` scored by ``model``, best first.

    The score is the model's raw output, plus the linear score (``ranked``'s) for a model
    boosted from it; the signals stay those the item was ranked on, so the served log keeps
    the same training rows whichever ranker served them. Only scores here (about a
    millisecond for 300 candidates): what explains a score (:func:`explain`) costs far more
    and is computed for the items a page shows.
    """
    if not ranked:
        return []
    names, missing = model.features, math.nan
    # feature_vector's rows, built inline: this loop is most of a rerank's cost.
    rows = np.array(
        [[get(name, missing) for name in names] for get in (s.signals.get for s in ranked)],
        dtype=np.float64,
    )
    scores = np.asarray(model.booster.predict(rows, num_threads=1), dtype=np.float64)
    if model.boost_from_linear:
        scores = scores + np.fromiter((s.score for s in ranked), np.float64, len(ranked))
    # Stable: equal scores keep the linear ranking's order (and its fair tie-break).
    order = np.argsort(-scores, kind="stable")
    return [Scored(ranked[i].item_id, float(scores[i]), ranked[i].signals) for i in order]


def explain(
    signals: Sequence[Mapping[str, float]], model: LoadedModel
) -> list[tuple[tuple[str, float], ...]]:
    """Each item's top contributing features, ``(name, contribution)``, largest first.

    LightGBM's contributions (TreeSHAP) sum exactly to the model's output; for a model
    boosted from the linear ranking, ``linear`` (its score, recomputed from the signals with
    today's weights) competes with them for a place.
    """
    if not signals:
        return []
    rows = np.array([feature_vector(s, model.features) for s in signals], dtype=np.float64)
    contributions = np.asarray(model.booster.predict(rows, pred_contrib=True, num_threads=1))
    names: tuple[str, ...] = model.features
    if model.boost_from_linear:
        weights = Weights.from_settings()
        # The linear score takes the bias column's place.
        contributions[:, -1] = [linear_score(s, weights) for s in signals]
        names = (*names, "linear")
        width = contributions.shape[1]
    else:
        width = contributions.shape[1] - 1
    out = []
    for contrib in contributions:
        order = np.argsort(-np.abs(contrib[:width]))[:TOP_FEATURES]
        out.append(tuple((names[i], round(float(contrib[i]), 4)) for i in order if contrib[i] != 0))
    return out
