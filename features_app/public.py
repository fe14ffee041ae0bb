"""The features_app facade: the only module other apps import from here."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import redis
from django.db.models import Max

from features_app import (
    co_reading,
    context_counters,
    counters,
    embedding_jobs,
    embeddings,
    fallback,
    forgetting,
    jobs,
    segments,
    services,
    sessions,
)
from features_app.contracts import (
    ENGAGEMENT_LEVELS,
    Engagement,
    EventIn,
    EventType,
    Forgetting,
    IngestResult,
    ItemSignals,
    RecordResult,
    UserProfile,
    UserSegment,
)
from features_app.models import CounterQuarantine, PendingCount, UserEvent
from features_app.partitions import ensure_partitions
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.public import ItemFacets

# The model version stored with every vector (vectors of other versions are never served).
EMBEDDING_MODEL_VERSION = embeddings.MODEL_VERSION
EmbedResult = embeddings.EmbedResult
RefreshResult = embedding_jobs.RefreshResult
# The lock-and-status pattern of the feature-store jobs (ADR 0016), for other apps' beat
# jobs too: one run at a time per name, its figures in the job's status hash.
job_run = jobs.run
JobBusy = jobs.JobBusy

__all__ = [
    "EMBEDDING_MODEL_VERSION",
    "ENGAGEMENT_LEVELS",
    "ENGAGEMENT_SEGMENTS",
    "ContextCounts",
    "CurrentSession",
    "EmbedResult",
    "Engagement",
    "EventIn",
    "EventType",
    "Forgetting",
    "ForgettingSource",
    "IngestResult",
    "ItemSignals",
    "JobBusy",
    "RecordResult",
    "RefreshResult",
    "UserProfile",
    "UserSegment",
    "co_read",
    "context_counts",
    "current_session",
    "embed_items",
    "embed_texts",
    "ensure_partitions",
    "event_count",
    "event_last_id",
    "event_log_table",
    "events_between",
    "events_count",
    "events_ingest",
    "events_record",
    "events_store",
    "forget_now",
    "health_figures",
    "item_embeddings",
    "item_signals",
    "item_signals_from_log",
    "job_run",
    "last_engaged_item_id",
    "provider_embeddings",
    "refresh_user_embeddings",
    "segment_sizes",
    "session_knn_scores",
    "session_next_reads",
    "subscribe_forgetting",
    "trending",
    "trending_from_log",
    "unsubscribe_forgetting",
    "user_embeddings",
    "user_profile",
    "user_profile_from_log",
    "user_segment",
    "user_segment_decode",
]


# --- What readers asked to forget (issue 13, user control) -------------------------------

ForgettingSource = forgetting.ForgettingSource


def subscribe_forgetting(source: ForgettingSource) -> None:
    """Register ``source(user_ids)``, which returns the :class:`Forgetting` records of
    those users (``None``: of every user). Every recount of a user's taste from the log
    (reconcile, restore, user embeddings, the PostgreSQL fallback) leaves out what they
    say. Register it once, in ``AppConfig.ready``."""
    forgetting.subscribe(source)


def unsubscribe_forgetting(source: ForgettingSource) -> None:
    """Stop asking ``source`` (tests)."""
    forgetting.unsubscribe(source)


def forget_now(record: Forgetting) -> bool:
    """Take from Redis now what a just-stored ``record`` forgets (affinity field, or for a
    reset the user's whole learned state); False when Redis is away (the next reconcile
    takes it out)."""
    return forgetting.forget_now(record)


def events_record(events: Sequence[EventIn]) -> RecordResult:
    """Append events to the log idempotently (see :func:`features_app.services.events_record`)."""
    return services.events_record(events)


def event_count(*, source: str | None = None) -> int:
    """How many events the log holds (of one source, if given)."""
    qs = UserEvent.objects.all()
    if source is not None:
        qs = qs.filter(source=source)
    return qs.count()


def events_ingest(events: Sequence[EventIn]) -> IngestResult:
    """Store events (idempotently) and count the new ones in Redis in one round trip."""
    return services.events_ingest(events)


def item_signals(
    item_ids: Sequence[int], *, now: datetime, with_counts: bool = True
) -> dict[int, ItemSignals]:
    """Popularity signals of items at ``now`` (``with_counts=False``: decayed sums and first
    seen only, cheaper). Raises ``redis.RedisError`` when Redis is unreachable; see
    :func:`item_signals_from_log` for the degraded path."""
    return counters.item_signals(item_ids, now=now, with_counts=with_counts)


def user_profile(user_id: int) -> UserProfile:
    """A user's affinities and seen-without-click memory. Raises ``redis.RedisError``."""
    return counters.user_profile(user_id)


def trending(*, now: datetime, limit: int) -> list[tuple[int, float]]:
    """Item ids by time-decayed clicks at ``now``. Raises ``redis.RedisError``."""
    return counters.trending(now=now, limit=limit)


ContextCounts = context_counters.ContextCounts


def context_counts(
    user_id: int, item_ids: Sequence[int], *, country: str | None, now: datetime
) -> ContextCounts:
    """The counts behind the time and place signals of a feed (the user's hours, the items'
    hours, their opens in ``country`` and everywhere): one round trip. Raises
    ``redis.RedisError``."""
    return context_counters.context_counts(
        user_id, item_ids, country=country, now=now, decay=counters.click_decay()
    )


def item_signals_from_log(item_ids: Sequence[int], *, now: datetime) -> dict[int, ItemSignals]:
    """Degraded path: item signals computed from the event log in PostgreSQL."""
    return fallback.item_signals_from_log(item_ids, now=now)


def user_profile_from_log(user_id: int, *, now: datetime) -> UserProfile:
    """Degraded path: a user's profile rebuilt from their recent events in PostgreSQL."""
    return fallback.user_profile_from_log(user_id, now=now)


def trending_from_log(*, now: datetime, limit: int) -> list[tuple[int, float]]:
    """Degraded path: decayed clicks of the last 48 hours from PostgreSQL."""
    return fallback.trending_from_log(now=now, limit=limit)


def co_read(item_id: int, *, since: datetime, limit: int) -> list[int]:
    """Items most often engaged with by recent readers of ``item_id`` (co-reading).

    Shared by every user whose anchor is this item: kept in Redis for ten minutes.
    """
    return co_reading.co_read(item_id, since=since, limit=limit)


def last_engaged_item_id(user_id: int, *, since: datetime) -> int | None:
    """The item the user most recently clicked, read or saved since ``since``."""
    return co_reading.last_engaged_item_id(user_id, since=since)


# Session-kNN, shared with the offline evaluation (``ml_app.session_models.SessionKNN``).
session_knn_scores = sessions.knn_scores
CurrentSession = sessions.CurrentSession


def current_session(user_id: int, *, now: datetime) -> sessions.CurrentSession | None:
    """The user's reading session in progress at ``now`` (items engaged with in order),
    None when there is none (over after ``EXPERIENCE_SESSION_GAP_MINUTES`` without an
    engagement): one Redis round trip; a Redis error propagates."""
    return sessions.current_session(user_id, now=now)


def session_next_reads(session: sessions.CurrentSession, *, limit: int) -> list[tuple[int, float]]:
    """Session-kNN's best next items after ``session`` with scores in [0, 1] (the best 1),
    its own items left out: one Redis round trip; a Redis error propagates."""
    return sessions.next_reads(session, limit=limit)


def events_store(events: Sequence[EventIn], *, create_partitions: bool = True) -> list[EventIn]:
    """Store events in PostgreSQL only (inside the caller's transaction); returns the ones
    this call inserted. Count them with :func:`events_count` once the transaction commits.

    Client events pass ``create_partitions=False``: a month without partition is then
    refused with ``ServiceUnavailable`` (503) instead of created on the request path."""
    return services.events_store(events, create_partitions=create_partitions)


def events_count(
    events: Sequence[EventIn], *, facets: Mapping[int, ItemFacets] | None = None
) -> bool:
    """Count stored events (what :func:`events_store` returned) in Redis, once their
    transaction committed. True when counted now; False when Redis is down or slow or a job
    pauses counting: they stay pending and the pending sweep counts them exactly once.
    Pass the items' ``facets`` when you already have them (saves two queries)."""
    return services.events_count(events, facets=facets)


def health_figures() -> dict[str, float]:
    """Feature-store figures for monitoring: open quarantines (PostgreSQL), and from Redis
    the items waiting for a sync, seconds since the last sync and the last reconcile's
    drift. Redis figures are absent when Redis is unreachable."""
    figures: dict[str, float] = {
        "quarantined_open": float(
            CounterQuarantine.objects.filter(resolved_at__isnull=True).count()
        )
    }
    oldest = PendingCount.objects.order_by("id").values_list("created_at", flat=True).first()
    figures["pending_batches"] = float(PendingCount.objects.count())
    figures["pending_oldest_age_seconds"] = (
        max(0.0, time.time() - oldest.timestamp()) if oldest else 0.0
    )
    try:
        pipe = inbo_redis.state().pipeline(transaction=False)
        pipe.scard(keys.dirty_items())
        pipe.hgetall(keys.features_job_status("sync"))
        pipe.hgetall(keys.features_job_status("reconcile"))
        dirty, sync_status, reconcile_status = pipe.execute()
    except redis.RedisError:
        return figures
    figures["dirty_items"] = float(dirty)
    if "finished_at" in sync_status:
        figures["sync_age_seconds"] = max(0.0, time.time() - float(sync_status["finished_at"]))
    if "drift" in reconcile_status:
        figures["reconcile_drift"] = float(reconcile_status["drift"])
    return figures


def retention_figures() -> dict[str, dict[str, float]]:
    """Per log the retention job keeps (ADR 0026): ``oldest_age_seconds`` (its oldest row's
    age now, by the last run's reading; 0 when empty) and ``window_seconds`` (what the run
    kept). Empty before the first run; raises ``redis.RedisError`` when Redis is away."""
    from features_app import retention  # the job imports the apps' log declarations

    return retention.figures()


# --- Content embeddings (docs/ML.md "Embeddings") --------------------------------------


def embed_items(item_ids: Sequence[int], *, force: bool = False) -> EmbedResult:
    """Embed (in this process: a worker or a command, never a request) the published items
    among ``item_ids`` whose text or model version changed, and refresh their providers'
    vectors. Loads the model on first use (about a second)."""
    return embeddings.embed_items(item_ids, force=force)


def embed_texts(texts: Sequence[str]) -> np.ndarray:
    """Unit-length float32 vectors (``(n, 384)``) of free texts with the same model, e.g.
    an offline evaluation's items; build item texts as title, summary, body."""
    return embeddings.encode(texts)


def item_embeddings(item_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """Stored vectors (float32, unit length, 384-d) of the items that have one of
    ``EMBEDDING_MODEL_VERSION``, by id. PostgreSQL only; no model is loaded."""
    return embeddings.item_embeddings(item_ids)


def provider_embeddings(provider_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """Stored provider vectors (mean of their recent items), by id."""
    return embeddings.provider_embeddings(provider_ids)


def user_embeddings(user_ids: Sequence[int]) -> dict[int, np.ndarray]:
    """Stored user vectors (time-decayed engagement, minus dismiss/hide), by id."""
    return embedding_jobs.user_embeddings(user_ids)


def refresh_user_embeddings(*, now: datetime | None = None) -> RefreshResult:
    """One run of the "similar" job: users with events after the watermark get their vector
    and "similar" candidates (``inbo.keys.learned_candidates("similar", id)``) again.
    Returns the counts; never raises for Redis (``skipped="redis"``)."""
    return embedding_jobs.refresh_user_embeddings(now=now)


# --- The event log, streamed (training and fold-in of learned models, ml_app) ----------

# One event as ``events_between`` yields it: (id, user_id, item_id, event_type, occurred_at,
# context).
EventRow = tuple[int, int, int, str, datetime, dict[str, Any]]


def events_between(
    since: datetime,
    until: datetime,
    *,
    event_types: Collection[str] | None = None,
    user_ids: Collection[int] | None = None,
    after_id: int = 0,
    through_id: int | None = None,
    limit: int | None = None,
    chunk_size: int = 5000,
    remembered: bool = False,
) -> Iterator[EventRow]:
    """Events with ``since <= occurred_at < until`` (only the months asked for are read),
    of ``event_types`` and ``user_ids`` when given, with ``after_id < id <= through_id``,
    as light tuples (:data:`EventRow`), streamed from a server-side cursor. Ordered by id
    only when ``limit`` is given (the first ``limit`` after ``after_id``).

    ``remembered=True`` leaves out, in SQL, what readers asked to forget (ADR 0023): every
    event before their reset, and every event on an item of a category or a provider they
    removed, before the removal (``features_app.forgetting.remembered``). Whoever learns a
    reader's taste from the log passes it (ALS training and fold-in)."""
    qs = UserEvent.objects.filter(occurred_at__gte=since, occurred_at__lt=until)
    if remembered:
        qs = forgetting.remembered(qs, since=since, until=until, user_ids=user_ids)
    if event_types is not None:
        qs = qs.filter(event_type__in=list(event_types))
    if user_ids is not None:
        qs = qs.filter(user_id__in=list(user_ids))
    if after_id:
        qs = qs.filter(id__gt=after_id)
    if through_id is not None:
        qs = qs.filter(id__lte=through_id)
    rows = qs.order_by().values_list(
        "id", "user_id", "item_id", "event_type", "occurred_at", "context"
    )
    if limit is not None:
        return iter(list(rows.order_by("id")[:limit]))
    return rows.iterator(chunk_size=chunk_size)


def event_last_id(*, since: datetime) -> int:
    """The largest event id among events that occurred since ``since`` (0: none)."""
    last = UserEvent.objects.filter(occurred_at__gte=since).aggregate(top=Max("id"))["top"]
    return int(last or 0)


def event_log_table() -> str:
    """The event log's table name, for analyses that aggregate it in raw SQL (the
    experiments' session metrics). Filter it by ``occurred_at`` so only the months asked for
    are read."""
    return UserEvent._meta.db_table


# --- Segments (docs/FEATURE_STORE.md "Segments") ---------------------------------------

# The engagement segments' names, as experiment targeting and metrics name them.
ENGAGEMENT_SEGMENTS: tuple[str, ...] = tuple(e.value for e in Engagement)


def user_segment(user_id: int) -> UserSegment | None:
    """The user's engagement segment and interest cluster (with its label in words) as the
    last segmentation run left them; None when the user was never segmented. One Redis GET,
    one query by primary key when Redis has none or is away."""
    return segments.user_segment(user_id)


def user_segment_decode(
    user_id: int, raw: str | bytes | None, *, copies_complete: bool | None = None
) -> UserSegment | None:
    """:func:`user_segment` from values the caller read in its own Redis round trip:
    ``raw`` (``inbo.keys.user_segment(user_id)``, ``None``: absent) and whether
    ``inbo.keys.segments_written()`` exists (``copies_complete``). Without ``raw``: None
    when the copies are complete (the user was never segmented), else PostgreSQL (Redis lost
    them, or is away: pass False); ``copies_complete=None`` checks with one EXISTS."""
    return segments.decode(user_id, raw, copies_complete=copies_complete)


def segment_sizes(*, clusters: bool = False) -> dict[str, int]:
    """Users per engagement segment (or per interest cluster id) on the latest day a
    segmentation ran (one query; empty before the first run)."""
    return segments.latest_sizes("cluster" if clusters else "engagement")
