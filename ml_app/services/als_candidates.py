"""ALS in the product, serving side: the artifact, confidence weights, and what Celery
precomputes into Redis so that a request only reads (docs/ML.md "Collaborative filtering
in the product").

* :class:`AlsArtifact` is what the registry stores for kind ``"als"``: ``np.savez`` (no
  pickle) of ``user_ids``/``item_ids`` (int64, INBO ids in row order), ``user_factors``/
  ``item_factors`` (float32) and ``params`` (a JSON string: hyperparameters, confidence
  weights and scaling, format ``FORMAT``).
* :func:`write_user_candidates` replaces ``keys.learned_candidates("als", user)`` with the
  user's best unseen items among the available ones; :func:`write_neighbours` replaces
  ``keys.item_neighbours("als", item)``. Both DEL + ZADD + EXPIRE in one MULTI per chunk,
  so a reader sees the old set or the new one.
* :func:`als_fold_in` (beat, every minute): users with events after the watermark get
  their vector solved again against the active version's item factors (``implicit``'s
  ``recalculate_user``) from their window events, and their set rewritten; no retraining.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import redis
from django.conf import settings
from django.utils import timezone
from implicit.cpu.als import AlternatingLeastSquares
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from experience_app import public as experience
from features_app import public as features
from features_app.contracts import EventType
from inbo import keys
from inbo import redis as inbo_redis
from reading_app import public as reading

logger = logging.getLogger(__name__)

KIND = "als"
FORMAT = "inbo-als-1"
FOLD_IN_JOB = "als_fold_in"
POSITIVE = (EventType.CLICK, EventType.READ, EventType.SAVE, EventType.SHARE)
NEGATIVE = (EventType.DISMISS, EventType.HIDE)
# Users (or items) scored in one matrix product, and written in one MULTI.
_CHUNK = 256

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Busy(Exception):
    """Another run holds the job's lock."""


# --- Confidence ------------------------------------------------------------------------


def confidence_weights() -> dict[str, float]:
    """The confidence of each positive event type (settings ``ML_ALS_WEIGHT_*``); a read adds
    ``read_depth`` x its depth. Impression, dismiss and hide have none."""
    return {
        "click": settings.ML_ALS_WEIGHT_CLICK,
        "read": settings.ML_ALS_WEIGHT_READ,
        "read_depth": settings.ML_ALS_WEIGHT_READ_DEPTH,
        "save": settings.ML_ALS_WEIGHT_SAVE,
        "share": settings.ML_ALS_WEIGHT_SHARE,
    }


def event_confidence(event_type: str, context: Any, weights: Mapping[str, float]) -> float:
    """One event's confidence: 0 for impression, dismiss and hide; a read by its depth
    (``context["depth"]`` or ``["progress"]`` in (0, 1]; 1 when absent: a read is to the end)."""
    if event_type == EventType.READ:
        depth = 1.0
        if isinstance(context, dict):
            reported = context.get("depth", context.get("progress"))
            if isinstance(reported, int | float) and not isinstance(reported, bool):
                depth = float(reported) if 0.0 < float(reported) <= 1.0 else depth
        return weights["read"] + weights["read_depth"] * depth
    return float(weights.get(event_type, 0.0))


def scaled(total: float, scaling: str) -> float:
    """A pair's summed confidence as ALS sees it: ``log1p`` (repeats count less and less) or
    as it is (``linear``); ``implicit`` then multiplies it by ``alpha``."""
    return math.log1p(total) if scaling == "log" else total


@dataclass
class UserEvents:
    """Summed confidence per (user, item) and every item a user engaged with or rejected."""

    pairs: dict[tuple[int, int], float]
    seen: dict[int, set[int]]


def collect(rows: Iterable[features.EventRow], weights: Mapping[str, float]) -> UserEvents:
    """Sum the positive events' confidence per pair; remember dismissed/hidden items too."""
    pairs: defaultdict[tuple[int, int], float] = defaultdict(float)
    seen: defaultdict[int, set[int]] = defaultdict(set)
    for _id, user_id, item_id, event_type, _at, context in rows:
        seen[user_id].add(item_id)
        weight = event_confidence(event_type, context, weights)
        if weight > 0:
            pairs[(user_id, item_id)] += weight
    return UserEvents(dict(pairs), dict(seen))


# --- The artifact ----------------------------------------------------------------------


@dataclass
class AlsArtifact:
    """A trained ALS model as stored in the registry (see the module docstring)."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    params: dict[str, Any]

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            user_ids=self.user_ids.astype(np.int64),
            item_ids=self.item_ids.astype(np.int64),
            user_factors=self.user_factors.astype(np.float32),
            item_factors=self.item_factors.astype(np.float32),
            params=np.array(json.dumps({"format": FORMAT, **self.params}, sort_keys=True)),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes | memoryview) -> AlsArtifact:
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as npz:
            params = json.loads(str(npz["params"]))
            if params.get("format") != FORMAT:
                raise ValueError(f"not an {FORMAT} artifact: {params.get('format')!r}")
            return cls(
                npz["user_ids"],
                npz["item_ids"],
                npz["user_factors"],
                npz["item_factors"],
                params,
            )

    def item_rows(self) -> dict[int, int]:
        return {int(i): row for row, i in enumerate(self.item_ids)}

    def user_rows(self) -> dict[int, int]:
        return {int(u): row for row, u in enumerate(self.user_ids)}

    def solver(self) -> AlternatingLeastSquares:
        """An ``implicit`` model holding these item factors, for ``recalculate_user``."""
        model = AlternatingLeastSquares(
            factors=int(self.item_factors.shape[1]),
            regularization=float(self.params["regularization"]),
            alpha=float(self.params["alpha"]),
            iterations=1,
            num_threads=1,
        )
        model.item_factors = np.ascontiguousarray(self.item_factors, dtype=np.float32)
        model.user_factors = np.ascontiguousarray(self.user_factors, dtype=np.float32)
        return model

    def fold_in(self, users: Mapping[int, Mapping[int, float]]) -> dict[int, np.ndarray]:
        """Each user's vector solved against the fixed item factors from their pairs'
        scaled confidence (items the model does not know are ignored; a user with none
        is left out)."""
        rows = self.item_rows()
        known = {
            u: {rows[i]: c for i, c in pairs.items() if i in rows and c > 0}
            for u, pairs in users.items()
        }
        known = {u: p for u, p in known.items() if p}
        if not known:
            return {}
        order = sorted(known)
        indptr, indices, data = [0], [], []
        for u in order:
            cols = sorted(known[u])
            indices += cols
            data += [known[u][c] for c in cols]
            indptr.append(len(indices))
        matrix = csr_matrix(
            (np.asarray(data, dtype=np.float32), indices, indptr),
            shape=(len(order), len(self.item_ids)),
        )
        with threadpool_limits(limits=1):
            vectors = self.solver().recalculate_user(np.arange(len(order)), matrix)
        return {u: np.asarray(vectors[n]) for n, u in enumerate(order)}


# --- Precomputed candidates and neighbours ---------------------------------------------


def available_pool(artifact: AlsArtifact, now: datetime) -> np.ndarray:
    """Rows of the model's items that are published within ``EXPERIENCE_CANDIDATE_DAYS``
    (what the feed may show): the only items written as candidates or neighbours."""
    since = now - timedelta(days=settings.EXPERIENCE_CANDIDATE_DAYS)
    recent = reading.recent_item_ids(since=since, limit=settings.ML_ALS_POOL_MAX_ITEMS)
    rows = artifact.item_rows()
    return np.asarray(sorted(rows[i] for i in recent if i in rows), dtype=np.int64)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the ``k`` best finite scores, best first (ties: lower index first)."""
    finite = int(np.isfinite(scores).sum())
    k = min(k, finite)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.lexsort((best, -scores[best]))]


def _replace_zset(pipe: Any, key: str, members: list[tuple[int, float]]) -> None:
    pipe.delete(key)
    if members:
        pipe.zadd(key, {str(item_id): score for item_id, score in members})
        pipe.expire(key, keys.LEARNED_CANDIDATES_TTL_SECONDS)


def write_user_candidates(
    artifact: AlsArtifact,
    vectors: Mapping[int, np.ndarray],
    seen: Mapping[int, set[int]],
    pool: np.ndarray,
) -> int:
    """Replace each user's ALS set with their ``ML_ALS_CANDIDATES`` best pool items, less
    what they engaged with or rejected (a user whose list is empty loses the set). Raises
    ``redis.RedisError``. Returns the non-empty sets written."""
    client = inbo_redis.state()
    pool_ids = artifact.item_ids[pool]
    pool_factors = artifact.item_factors[pool]
    written = 0
    users = sorted(vectors)
    for start in range(0, len(users), _CHUNK):
        chunk = users[start : start + _CHUNK]
        with threadpool_limits(limits=1):
            scores = np.vstack([vectors[u] for u in chunk]) @ pool_factors.T
        pipe = client.pipeline(transaction=True)
        for n, user_id in enumerate(chunk):
            row = scores[n].astype(np.float64)
            row[np.isin(pool_ids, list(seen.get(user_id, ())))] = -np.inf
            best = _top(row, settings.ML_ALS_CANDIDATES)
            members = [(int(pool_ids[i]), round(float(row[i]), 6)) for i in best]
            _replace_zset(pipe, keys.learned_candidates(KIND, user_id), members)
            written += bool(members)
        pipe.execute()
    return written


def write_neighbours(artifact: AlsArtifact, pool: np.ndarray) -> int:
    """Replace every model item's ALS neighbours with its ``ML_ALS_NEIGHBOURS`` nearest pool
    items by cosine of the item factors (itself excluded). Raises ``redis.RedisError``."""
    if not len(pool):
        return 0
    norms = np.linalg.norm(artifact.item_factors, axis=1)
    unit = artifact.item_factors / np.where(norms > 0, norms, 1.0)[:, None]
    pool_unit = unit[pool]
    client = inbo_redis.state()
    count = len(artifact.item_ids)
    for start in range(0, count, _CHUNK):
        stop = min(count, start + _CHUNK)
        with threadpool_limits(limits=1):
            scores = (unit[start:stop] @ pool_unit.T).astype(np.float64)
        pipe = client.pipeline(transaction=True)
        for n, row_index in enumerate(range(start, stop)):
            row = scores[n]
            row[pool == row_index] = -np.inf
            best = _top(row, settings.ML_ALS_NEIGHBOURS)
            members = [(int(artifact.item_ids[pool[i]]), round(float(row[i]), 6)) for i in best]
            item_id = int(artifact.item_ids[row_index])
            _replace_zset(pipe, keys.item_neighbours(KIND, item_id), members)
        pipe.execute()
    return count


# --- Locks -----------------------------------------------------------------------------


@contextlib.contextmanager
def job_lock(job: str, seconds: int):
    """Hold ``keys.learned_lock(job)`` for the block; raises :class:`Busy` when another run
    holds it (and ``redis.RedisError`` when Redis is away)."""
    client = inbo_redis.state()
    lock, token = keys.learned_lock(job), uuid.uuid4().hex
    if not client.set(lock, token, nx=True, ex=seconds):
        raise Busy(job)
    try:
        yield
    finally:
        with contextlib.suppress(redis.RedisError):  # else the lock's TTL frees it
            client.eval(_RELEASE, 1, lock, token)


# --- Fold-in ---------------------------------------------------------------------------

_loaded: dict[str, Any] = {"id": None, "artifact": None}


def active_artifact() -> tuple[int, AlsArtifact] | None:
    """The active ALS version's id and artifact (kept in this process per version)."""
    version = experience.model_active(KIND)
    if version is None or version.artifact is None:
        return None
    if _loaded["id"] != version.id:
        _loaded["artifact"] = AlsArtifact.from_bytes(version.artifact)
        _loaded["id"] = version.id
    return version.id, _loaded["artifact"]


def user_window_events(
    user_ids: Iterable[int], *, now: datetime, days: int, weights: Mapping[str, float]
) -> UserEvents:
    """The users' positive and negative events of the training window ending at ``now``,
    less what they asked to forget (a reset, a removed interest: ADR 0023)."""
    rows = features.events_between(
        now - timedelta(days=days),
        now,
        event_types=[t.value for t in (*POSITIVE, *NEGATIVE)],
        user_ids=sorted(set(user_ids)),
        remembered=True,
    )
    return collect(rows, weights)


def refresh_users(
    artifact: AlsArtifact, user_ids: Iterable[int], *, now: datetime, pool: np.ndarray
) -> int:
    """Solve the users' vectors again from their window events and rewrite their sets (a
    user left with no known positive item loses the set). Raises ``redis.RedisError``."""
    users = sorted(set(user_ids))
    if not users:
        return 0
    weights = artifact.params.get("weights") or confidence_weights()
    scaling = str(artifact.params.get("confidence", settings.ML_ALS_CONFIDENCE))
    days = int(artifact.params.get("days", settings.ML_ALS_TRAIN_DAYS))
    events = user_window_events(users, now=now, days=days, weights=weights)
    per_user: dict[int, dict[int, float]] = defaultdict(dict)
    for (u, i), total in events.pairs.items():
        per_user[u][i] = scaled(total, scaling)
    vectors = artifact.fold_in(per_user)
    written = write_user_candidates(artifact, vectors, events.seen, pool)
    gone = [u for u in users if u not in vectors]
    if gone:
        pipe = inbo_redis.state().pipeline(transaction=True)
        for u in gone:
            pipe.delete(keys.learned_candidates(KIND, u))
        pipe.execute()
    return written


@dataclass(frozen=True, slots=True)
class FoldInResult:
    """What one fold-in run did."""

    users: int = 0
    written: int = 0
    watermark: int = 0
    version_id: int | None = None
    skipped: str = ""  # "no_model", "busy", "redis"


def als_fold_in(*, now: datetime | None = None) -> FoldInResult:
    """One fold-in run (beat, every ``ML_ALS_FOLD_IN_INTERVAL_SECONDS``): under
    ``keys.learned_lock("als_fold_in")``, take up to ``ML_ALS_FOLD_IN_EVENTS`` non-impression
    events after the watermark ``keys.learned_watermark("als_fold_in")``, give their users
    fresh ALS candidates from the active version, and only then advance the watermark. No
    active version: nothing. Redis away: logged, nothing advanced (never raises for it)."""
    now = now or timezone.now()
    active = active_artifact()
    if active is None:
        return FoldInResult(skipped="no_model")
    version_id, artifact = active
    try:
        with job_lock(FOLD_IN_JOB, max(60, settings.ML_ALS_FOLD_IN_INTERVAL_SECONDS * 5)):
            result = _fold_in(version_id, artifact, now)
    except Busy:
        logger.info("ml.als_fold_in_skipped reason=busy")
        return FoldInResult(version_id=version_id, skipped="busy")
    except redis.RedisError as exc:
        logger.warning("ml.als_fold_in_skipped reason=redis error=%s", exc)
        return FoldInResult(version_id=version_id, skipped="redis")
    logger.info(
        "ml.als_fold_in users=%d written=%d watermark=%d version=%d",
        result.users,
        result.written,
        result.watermark,
        version_id,
    )
    return result


def _fold_in(version_id: int, artifact: AlsArtifact, now: datetime) -> FoldInResult:
    client = inbo_redis.state()
    watermark_key = keys.learned_watermark(FOLD_IN_JOB)
    watermark = int(client.get(watermark_key) or 0)
    days = int(artifact.params.get("days", settings.ML_ALS_TRAIN_DAYS))
    since = now - timedelta(days=days)
    # Bounded by the newest id now, so the watermark can jump past a run of impressions.
    top = features.event_last_id(since=since)
    if top <= watermark:
        return FoldInResult(0, 0, watermark, version_id)
    limit = settings.ML_ALS_FOLD_IN_EVENTS
    events = list(
        features.events_between(
            since,
            now + timedelta(seconds=1),
            event_types=[t.value for t in (*POSITIVE, *NEGATIVE)],
            after_id=watermark,
            through_id=top,
            limit=limit,
        )
    )
    new_watermark = events[-1][0] if len(events) == limit else top
    users = {user_id for _, user_id, *_ in events}
    written = refresh_users(artifact, users, now=now, pool=available_pool(artifact, now))
    client.set(watermark_key, new_watermark)
    return FoldInResult(len(users), written, new_watermark, version_id)
