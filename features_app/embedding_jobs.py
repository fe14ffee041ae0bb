"""Jobs on content embeddings: the catalog listener, the incremental embedding task's body,
user embeddings, "similar to what you read" candidates and item neighbours.

* A catalog change (``reading_app.public.subscribe_catalog_changes``) queues
  ``inbo.features.embed_items`` once its transaction commits; the worker embeds the items
  (:func:`embed_and_link`) and writes their nearest neighbours. Nothing is computed in the
  request. A message lost with the broker is caught up by the periodic job's sweep.
* Every minute, :func:`refresh_user_embeddings` takes the users with events after the
  watermark (``keys.learned_watermark("user_embeddings")``), recomputes their vectors,
  searches the recent catalog exactly (one matrix product) and replaces their "similar"
  sorted set (``keys.learned_candidates("similar", user_id)``). The watermark moves only
  once everything is written: a run that fails (Redis away) is simply done again.

Exact search over the candidate window (``EXPERIENCE_CANDIDATE_DAYS``, at most
``EMBEDDINGS_POOL_MAX_ITEMS`` items) costs one ``(users x 384) @ (384 x items)`` product;
docs/ML.md says what replaces it at millions of items.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import numpy as np
import redis
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from features_app import embeddings, forgetting
from features_app.contracts import AFFINITY_WEIGHTS, EventType
from features_app.jobs import JobBusy
from features_app.models import UserEmbedding, UserEvent
from inbo import keys
from inbo import redis as inbo_redis
from reading_app import public as reading

logger = logging.getLogger(__name__)

WATERMARK_JOB = "user_embeddings"
EMBED_TASK = "inbo.features.embed_items"
# Event types that move a user's vector: engagement towards an item (as in affinity
# learning), dismiss and hide away from it, more gently than affinity does: a vector is a
# mean of directions, and one dismiss must not outweigh two reads.
_WEIGHTED = {
    **{t: w for t, w in AFFINITY_WEIGHTS.items() if w > 0.0},
    EventType.DISMISS: -0.5,
    EventType.HIDE: -1.0,
}
# Negative mass is capped at this share of the positive mass: the vector stays the user's
# taste, pushed away from what they rejected, never the opposite of what they rejected.
_MAX_NEGATIVE_SHARE = 0.5
# Users (or items) whose scores are computed in one matrix product (bounds the product's memory).
_USER_CHUNK = 128

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# --- Catalog changes -> the incremental task -------------------------------------------


def on_catalog_change(kind: str, ids: Sequence[int], op: str) -> None:
    """Catalog listener: queue the changed items' embedding once the change commits (a
    rolled-back change queues nothing). Deleted items lose their vector by cascade."""
    if kind != reading.CatalogKind.ITEMS.value or op != reading.CatalogOp.UPSERT.value:
        return
    transaction.on_commit(partial(request_embedding, list(ids)), robust=True)


def request_embedding(item_ids: Sequence[int]) -> int:
    """Queue ``inbo.features.embed_items`` for ``item_ids`` in messages of
    ``EMBEDDINGS_TASK_ITEMS`` ids (``send_task``: never run inline, even with eager tasks).
    Returns the messages sent; a broker error is logged (the periodic sweep catches up)."""
    ids = sorted(set(item_ids))
    size = max(1, settings.EMBEDDINGS_TASK_ITEMS)
    sent = 0
    for start in range(0, len(ids), size):
        try:
            current_app.send_task(EMBED_TASK, args=[ids[start : start + size]], retry=False)
        except (OSError, redis.RedisError, KombuOperationalError) as exc:
            logger.warning(
                "features.embedding_request_failed items=%d error=%s", len(ids) - start, exc
            )
            break
        sent += 1
    return sent


def embed_and_link(item_ids: Sequence[int]) -> embeddings.EmbedResult:
    """The incremental task's body: embed the items, then write their nearest neighbours
    (skipped, and logged, when Redis is away: the vectors are stored either way)."""
    result = embeddings.embed_items(item_ids)
    if result.item_ids:
        try:
            write_neighbours(result.item_ids, pool=candidate_pool())
        except redis.RedisError as exc:
            logger.warning("features.neighbours_skipped reason=redis error=%s", exc)
    return result


# --- Exact nearest neighbours ----------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """The items candidates are drawn from: recent, published, embedded; unit rows."""

    ids: np.ndarray  # int64, row order of ``vectors``
    vectors: np.ndarray  # (n, 384) float32

    def __len__(self) -> int:
        return len(self.ids)


def candidate_pool(now: datetime | None = None) -> Pool:
    """Embedded items published within ``EXPERIENCE_CANDIDATE_DAYS`` (newest first, at most
    ``EMBEDDINGS_POOL_MAX_ITEMS``): where "similar" candidates and neighbours come from."""
    since = (now or timezone.now()) - timedelta(days=settings.EXPERIENCE_CANDIDATE_DAYS)
    recent = reading.recent_item_ids(since=since, limit=settings.EMBEDDINGS_POOL_MAX_ITEMS)
    ids, vectors = embeddings.matrix(recent)
    return Pool(np.asarray(ids, dtype=np.int64), vectors)


def top_k(
    scores: np.ndarray, ids: np.ndarray, k: int, exclude: Iterable[int] = ()
) -> list[tuple[int, float]]:
    """The ``k`` best (id, score) of one row of scores, best first, ``exclude`` left out."""
    scores = scores.astype(np.float64, copy=True)
    banned = np.isin(ids, np.fromiter(exclude, dtype=np.int64))
    scores[banned] = -np.inf
    k = min(k, int((~banned).sum()))
    if k <= 0:
        return []
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [(int(ids[i]), float(scores[i])) for i in best]


def write_neighbours(item_ids: Iterable[int], *, pool: Pool) -> int:
    """Replace each item's ``keys.item_neighbours("similar", id)`` with its
    ``EMBEDDINGS_NEIGHBOURS`` nearest pool items (cosine). Raises ``redis.RedisError``."""
    vectors = embeddings.item_embeddings(item_ids)
    if not vectors or not len(pool):
        return 0
    ids = sorted(vectors)
    client = inbo_redis.state()
    for start in range(0, len(ids), _USER_CHUNK):
        chunk = ids[start : start + _USER_CHUNK]
        scores = np.vstack([vectors[i] for i in chunk]) @ pool.vectors.T
        pipe = client.pipeline(transaction=True)
        for row, item_id in enumerate(chunk):
            best = top_k(scores[row], pool.ids, settings.EMBEDDINGS_NEIGHBOURS, exclude=[item_id])
            _replace_zset(pipe, keys.item_neighbours("similar", item_id), best)
        pipe.execute()
    return len(ids)


def _replace_zset(pipe: Any, key: str, members: list[tuple[int, float]]) -> None:
    """DEL + ZADD + EXPIRE queued in a MULTI: readers see the old set or the new one."""
    pipe.delete(key)
    if members:
        pipe.zadd(key, {str(item_id): score for item_id, score in members})
        pipe.expire(key, keys.LEARNED_CANDIDATES_TTL_SECONDS)


# --- User embeddings -------------------------------------------------------------------


@dataclass
class UserTaste:
    """A user's vector (None: no positive engagement with an embedded item) and every item
    they engaged with or dismissed in the window (never proposed back to them)."""

    vector: np.ndarray | None
    seen: set[int]
    item_count: int


def _event_weight(event_type: str, context: Any, age_days: float, half_life: float) -> float:
    weight = _WEIGHTED.get(EventType(event_type), 0.0)
    if event_type == EventType.READ and isinstance(context, dict):
        # A read to a known depth counts in proportion (clients may report 0..1).
        depth = context.get("depth", context.get("progress"))
        if isinstance(depth, int | float) and 0.0 < float(depth) <= 1.0:
            weight *= float(depth)
    return weight * 0.5 ** (max(0.0, age_days) / half_life)


def user_tastes(user_ids: Iterable[int], *, now: datetime) -> dict[int, UserTaste]:
    """Each user's time-decayed, weighted mean of their items' vectors (engagement as in
    ``AFFINITY_WEIGHTS``, a read by its depth; dismiss -0.5 and hide -1, their total capped
    at half the positive mass; half-life ``EMBEDDINGS_USER_HALF_LIFE_DAYS``), renormalised.
    Items not embedded yet are embedded first, ``EMBEDDINGS_JOB_SWEEP_ITEMS`` at most (this
    runs in a worker)."""
    users = sorted(set(user_ids))
    since = now - timedelta(days=settings.EMBEDDINGS_USER_WINDOW_DAYS)
    rows = UserEvent.objects.filter(
        user_id__in=users,
        occurred_at__gte=since,
        occurred_at__lte=now,
        event_type__in=[t.value for t in _WEIGHTED],
    ).values_list("user_id", "item_id", "event_type", "occurred_at", "context")
    half_life = settings.EMBEDDINGS_USER_HALF_LIFE_DAYS
    weights: dict[int, dict[int, float]] = {u: defaultdict(float) for u in users}
    forget = forgetting.rules(users)  # a reader's reset: what came before no longer counts
    for user_id, item_id, event_type, occurred_at, context in rows.iterator(chunk_size=5000):
        rule = forget.get(user_id)
        if rule is not None and rule.all(occurred_at.timestamp()):
            continue
        age_days = (now - occurred_at).total_seconds() / 86400
        weights[user_id][item_id] += _event_weight(event_type, context, age_days, half_life)
    items = {i for per_user in weights.values() for i in per_user}
    # Bounded, so a run stays within its time limit: a catalogue never bulk-embedded
    # (manage.py embed_items) catches up over a few runs, those items counting once embedded.
    missing = embeddings.missing_item_ids(items)[: settings.EMBEDDINGS_JOB_SWEEP_ITEMS]
    if missing:
        embeddings.embed_items(missing, providers=False)
    vectors = embeddings.item_embeddings(items)
    tastes: dict[int, UserTaste] = {}
    for user_id, per_user in weights.items():
        used = [(i, w) for i, w in per_user.items() if i in vectors and w != 0.0]
        positive = sum(w for _, w in used if w > 0)
        negative = -sum(w for _, w in used if w < 0)
        vector = None
        if positive > 0:
            shrink = min(1.0, _MAX_NEGATIVE_SHARE * positive / negative) if negative else 1.0
            total = np.zeros(embeddings.DIMENSIONS, dtype=np.float64)
            for item_id, weight in used:
                total += (weight if weight > 0 else weight * shrink) * vectors[item_id]
            vector = embeddings.normalised(total)
        tastes[user_id] = UserTaste(vector, set(per_user), len(used))
    return tastes


def _store_users(tastes: dict[int, UserTaste], now: datetime) -> None:
    objs = [
        UserEmbedding(
            user_id=user_id,
            model_version=embeddings.MODEL_VERSION,
            vector=embeddings.to_bytes(taste.vector),
            item_count=taste.item_count,
            updated_at=now,
        )
        for user_id, taste in tastes.items()
        if taste.vector is not None
    ]
    cold = [u for u, taste in tastes.items() if taste.vector is None]
    with transaction.atomic():
        if objs:
            UserEmbedding.objects.bulk_create(
                objs,
                update_conflicts=True,
                unique_fields=["user"],
                update_fields=["model_version", "vector", "item_count", "updated_at"],
            )
        if cold:
            UserEmbedding.objects.filter(user_id__in=cold).delete()


def user_embeddings(user_ids: Iterable[int]) -> dict[int, np.ndarray]:
    """Stored current-version vectors of users, by id."""
    rows = UserEmbedding.objects.filter(
        user_id__in=list(set(user_ids)), model_version=embeddings.MODEL_VERSION
    )
    return {u: embeddings.from_bytes(v) for u, v in rows.values_list("user_id", "vector")}


def write_candidates(tastes: dict[int, UserTaste], *, pool: Pool) -> int:
    """Replace each user's "similar" sorted set with the ``EMBEDDINGS_CANDIDATES`` pool items
    closest to their vector, leaving out what they engaged with or dismissed (a user
    without a vector loses the set). Raises ``redis.RedisError``. Returns sets written."""
    client = inbo_redis.state()
    written = 0
    users = sorted(tastes)
    for start in range(0, len(users), _USER_CHUNK):
        chunk = users[start : start + _USER_CHUNK]
        warm = {u: v for u in chunk if (v := tastes[u].vector) is not None and len(pool)}
        rows: dict[int, np.ndarray] = {}
        if warm:
            rows = dict(zip(warm, np.vstack(list(warm.values())) @ pool.vectors.T, strict=True))
        pipe = client.pipeline(transaction=True)
        for user_id in chunk:
            best: list[tuple[int, float]] = []
            if user_id in rows:
                best = top_k(
                    rows[user_id],
                    pool.ids,
                    settings.EMBEDDINGS_CANDIDATES,
                    exclude=tastes[user_id].seen,
                )
            _replace_zset(pipe, keys.learned_candidates("similar", user_id), best)
            written += bool(best)
        pipe.execute()
    return written


# --- The periodic job ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What one run of :func:`refresh_user_embeddings` did."""

    users: int = 0  # users whose vector was recomputed
    candidates: int = 0  # "similar" sets written (non-empty)
    items_embedded: int = 0  # recent items the sweep embedded
    neighbours: int = 0  # items whose neighbours were rewritten
    watermark: int = 0  # the last event id taken into account
    skipped: str = ""  # why nothing was done: "busy", "redis"


def refresh_user_embeddings(*, now: datetime | None = None) -> RefreshResult:
    """One run of the periodic job (Celery beat, every ``EMBEDDINGS_JOB_INTERVAL_SECONDS``).

    Under ``keys.learned_lock("user_embeddings")``: embed recent items still without a
    vector (a lost task message), then take up to ``EMBEDDINGS_JOB_EVENTS`` non-impression
    events after the watermark, recompute their users' vectors and "similar" sets and the
    neighbours of the items they engaged with, and only then advance the watermark. Redis
    away: logged, nothing advanced, the next run does it (never raises for Redis)."""
    now = now or timezone.now()
    try:
        return _refresh(now)
    except JobBusy:
        logger.info("features.user_embeddings_skipped reason=busy")
        return RefreshResult(skipped="busy")
    except redis.RedisError as exc:
        logger.warning("features.user_embeddings_skipped reason=redis error=%s", exc)
        return RefreshResult(skipped="redis")


def _refresh(now: datetime) -> RefreshResult:
    client = inbo_redis.state()
    lock, token = keys.learned_lock(WATERMARK_JOB), uuid.uuid4().hex
    if not client.set(lock, token, nx=True, ex=settings.EMBEDDINGS_JOB_LOCK_SECONDS):
        raise JobBusy(WATERMARK_JOB)
    try:
        watermark = int(client.get(keys.learned_watermark(WATERMARK_JOB)) or 0)
        since = now - timedelta(days=settings.EMBEDDINGS_USER_WINDOW_DAYS)
        pool = candidate_pool(now)
        swept = _sweep(pool, now)
        if swept:
            pool = candidate_pool(now)
        # Bounded by the newest id now, so the watermark can jump past a run of impressions.
        window = UserEvent.objects.filter(occurred_at__gte=since)
        top = window.filter(id__gt=watermark).aggregate(top=Max("id"))["top"] or watermark
        limit = settings.EMBEDDINGS_JOB_EVENTS
        events = list(
            window.filter(id__gt=watermark, id__lte=top)
            .exclude(event_type=EventType.IMPRESSION)
            .order_by("id")
            .values_list("id", "user_id", "item_id", "event_type")[:limit]
        )
        new_watermark = events[-1][0] if len(events) == limit else top
        tastes = user_tastes({user_id for _, user_id, _, _ in events}, now=now)
        _store_users(tastes, now)
        candidates = write_candidates(tastes, pool=pool)
        engaged = {i for _, _, i, t in events if _WEIGHTED.get(EventType(t), 0.0) > 0}
        neighbours = write_neighbours(engaged | set(swept), pool=pool)
        client.set(keys.learned_watermark(WATERMARK_JOB), new_watermark)
    finally:
        with contextlib.suppress(redis.RedisError):  # else the lock's TTL frees it
            client.eval(_RELEASE, 1, lock, token)
    result = RefreshResult(len(tastes), candidates, len(swept), neighbours, new_watermark)
    logger.info(
        "features.user_embeddings_refreshed users=%d candidates=%d swept=%d neighbours=%d "
        "watermark=%d",
        *(result.users, result.candidates, result.items_embedded, result.neighbours),
        result.watermark,
    )
    return result


def _sweep(pool: Pool, now: datetime) -> list[int]:
    """Embed up to ``EMBEDDINGS_JOB_SWEEP_ITEMS`` recent items still without a vector."""
    since = now - timedelta(days=settings.EXPERIENCE_CANDIDATE_DAYS)
    recent = reading.recent_item_ids(since=since, limit=settings.EMBEDDINGS_POOL_MAX_ITEMS)
    have = set(pool.ids.tolist())  # the pool holds exactly the current-version vectors
    missing = [i for i in recent if i not in have][: settings.EMBEDDINGS_JOB_SWEEP_ITEMS]
    if not missing:
        return []
    return list(embeddings.embed_items(missing).item_ids)
