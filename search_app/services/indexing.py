"""Indexing: outbox rows to documents to every index that must hold them.

The configured backend (``SEARCH_BACKEND``) and PostgreSQL's own index (the fallback) are
both written, PostgreSQL first. A batch succeeds only when both took it; otherwise every
row counts a failed try (``outbox.fail``). Writes are idempotent (upserts and deletes by
id), so a retried or doubled run rewrites the same documents and changes nothing else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.utils import timezone

from inbo import keys, pg_locks
from inbo import redis as inbo_redis
from reading_app import public as reading
from reading_app.contracts import CatalogKind
from search_app.backends import POSTGRES, get_backend
from search_app.backends.base import BackendUnavailable, SearchBackend
from search_app.backends.postgres import INDEX_LOCK_KEY
from search_app.contracts import Document
from search_app.models import SearchDocument
from search_app.services import outbox
from search_app.services.documents import catalog_documents, documents_for

logger = logging.getLogger(__name__)


@dataclass
class IndexRun:
    """What one indexing run did."""

    skipped: bool = False  # another run (or a rebuild) held the lock
    indexed: int = 0  # rows whose change reached every index
    failed: int = 0  # rows that will be retried
    dead: int = 0  # rows that used their last try
    batches: int = 0
    errors: list[str] = field(default_factory=list)


def targets() -> list[SearchBackend]:
    """The indexes a change must reach: PostgreSQL's (always), then the configured one.
    A configured engine that cannot even be loaded raises ``BackendUnavailable``."""
    found = [get_backend(POSTGRES)]
    if settings.SEARCH_BACKEND != POSTGRES:
        found.append(get_backend(settings.SEARCH_BACKEND))
    return found


def _run_lock() -> AbstractContextManager[bool]:
    """One indexing run at a time, and none while PostgreSQL's index is rebuilt."""
    return pg_locks.session_lock(INDEX_LOCK_KEY)


def index_pending(*, batch_size: int | None = None, max_batches: int = 20) -> IndexRun:
    """Claim due outbox rows in batches and write their documents everywhere."""
    run = IndexRun()
    batch_size = batch_size or settings.SEARCH_INDEX_BATCH_SIZE
    with _run_lock() as acquired:
        if not acquired:
            return IndexRun(skipped=True)
        stale = outbox.stale_claims()
        if stale:
            run.dead += outbox.fail(stale, "claim expired: the worker stopped before finishing")
        for _ in range(max_batches):
            rows = outbox.claim(batch_size)
            if not rows:
                break
            run.batches += 1
            for doc_type in CatalogKind:
                of_type = [r for r in rows if r.doc_type == doc_type]
                if of_type:
                    _index_rows(doc_type, of_type, run)
    if run.indexed:
        _mark_indexed()
    if run.indexed or run.failed or run.dead:
        logger.info(
            "search.indexed rows=%d failed=%d dead=%d batches=%d",
            run.indexed,
            run.failed,
            run.dead,
            run.batches,
        )
    return run


def _index_rows(doc_type: CatalogKind, rows: list[outbox.Claimed], run: IndexRun) -> None:
    rows = _reconciled(rows, run)
    if not rows:
        return
    try:
        _write(doc_type, [r.object_id for r in rows])
    except Exception as exc:  # noqa: BLE001 - recorded on every row, logged, retried
        if len(rows) > 1 and not isinstance(exc, BackendUnavailable):
            # Maybe one bad document: try them one by one so the others get through.
            for row in rows:
                _index_rows(doc_type, [row], run)
            return
        _failed(rows, exc, run)
        return
    outbox.finish([r.id for r in rows])
    run.indexed += len(rows)


def _write(doc_type: CatalogKind, ids: Sequence[int]) -> None:
    """Write the current documents of ``ids`` (absent ones are deleted) to every index."""
    docs = documents_for(doc_type, ids)
    gone = [pk for pk in ids if pk not in docs]
    renamed = _renamed_providers(docs) if doc_type == CatalogKind.PROVIDERS else []
    for backend in targets():
        if docs:
            backend.upsert(list(docs.values()))
        if gone:
            backend.delete(doc_type, gone)
    if renamed:
        # Item documents show their provider's name and slug: they are stale now.
        outbox.enqueue(CatalogKind.ITEMS.value, reading.item_ids_of_providers(renamed), "upsert")


def _renamed_providers(docs: dict[int, Document]) -> list[int]:
    indexed = SearchDocument.objects.filter(
        doc_type=CatalogKind.PROVIDERS.value, object_id__in=list(docs)
    ).values_list("object_id", "title", "provider_slug")
    return [
        pk
        for pk, title, slug in indexed
        if (title, slug) != (docs[pk].fields["title"], docs[pk].fields["provider_slug"])
    ]


def _failed(rows: list[outbox.Claimed], exc: Exception, run: IndexRun) -> None:
    uids = getattr(exc, "task_uids", None)
    task_ref = ""
    if uids and settings.SEARCH_BACKEND != POSTGRES:
        task_ref = f"{settings.SEARCH_BACKEND}:{','.join(str(u) for u in uids)}"
    error = f"{type(exc).__name__}: {exc}"
    dead = outbox.fail(rows, error, task_ref=task_ref)
    run.dead += dead
    run.failed += len(rows) - dead
    run.errors.append(error)
    logger.warning(
        "search.index_failed doc_type=%s rows=%d dead=%d error=%s",
        rows[0].doc_type.value,
        len(rows),
        dead,
        error[:300],
        exc_info=not isinstance(exc, BackendUnavailable),
    )


def _reconciled(rows: list[outbox.Claimed], run: IndexRun) -> list[outbox.Claimed]:
    """Rows whose last write left engine tasks of unknown outcome: if the engine says they
    all succeeded, the change is indexed (PostgreSQL was written before them); otherwise
    it is sent again. Returns the rows still to write."""
    with_refs = [r for r in rows if r.task_ref]
    if not with_refs:
        return rows
    try:
        backend = get_backend(settings.SEARCH_BACKEND)
        statuses_of: Callable[[list[int]], dict[int, str]] | None = getattr(
            backend, "task_statuses", None
        )
        if statuses_of is None:
            return rows
        refs = {r.id: _task_uids(r.task_ref, backend.name) for r in with_refs}
        statuses = statuses_of(sorted({u for uids in refs.values() for u in uids}))
    except BackendUnavailable:
        return rows  # the write will fail and be counted the usual way
    done = [
        r.id
        for r in with_refs
        if refs[r.id] and all(statuses.get(u) == "succeeded" for u in refs[r.id])
    ]
    outbox.finish(done)
    run.indexed += len(done)
    return [r for r in rows if r.id not in set(done)]


def _task_uids(task_ref: str, backend: str) -> list[int]:
    name, _, uids = task_ref.partition(":")
    if name != backend:
        return []
    return [int(u) for u in uids.split(",") if u.strip().isdigit()]


def _mark_indexed() -> None:
    try:
        inbo_redis.state().set(keys.search_last_indexed(), f"{time.time():.3f}")
    except redis.RedisError as exc:
        logger.warning("search.last_indexed_not_recorded error=%s", exc)


def last_indexed_at() -> float | None:
    """Unix time of the last successful indexing batch, if Redis knows it."""
    try:
        value = inbo_redis.state().get(keys.search_last_indexed())
    except redis.RedisError:
        return None
    return float(value) if value else None


def reindex(
    names: Sequence[str] | None = None,
    *,
    progress: Callable[[str, CatalogKind, int, int], None] | None = None,
) -> dict[str, dict[str, int]]:
    """Rebuild the indexes of ``names`` (default: the configured backend and PostgreSQL's)
    from the whole catalog, with zero downtime for searchers. ``progress(backend, doc_type,
    done, total)`` follows each rebuild. Changes made while it ran are sent again through
    the outbox (an engine's new index may have missed them)."""
    if names is None:
        names = list(dict.fromkeys([settings.SEARCH_BACKEND, POSTGRES]))
    started = timezone.now()
    snapshot = {doc_type: catalog_documents(doc_type) for doc_type in CatalogKind}
    counts = {}
    for name in names:
        backend = get_backend(name)
        t0 = time.perf_counter()
        report = None
        if progress is not None:

            def report(doc_type: CatalogKind, done: int, total: int, name: str = name) -> None:
                progress(name, doc_type, done, total)

        counts[name] = backend.rebuild(lambda doc_type: snapshot[doc_type], progress=report)
        logger.info(
            "search.rebuilt backend=%s documents=%s seconds=%.1f",
            name,
            counts[name],
            time.perf_counter() - t0,
        )
    changed = reading.catalog_changed_since(started)
    for doc_type in CatalogKind:
        outbox.enqueue(doc_type.value, changed[doc_type.value], "upsert")
        now_ids = set(reading.searchable_ids(doc_type.value))
        outbox.enqueue(doc_type.value, sorted(set(snapshot[doc_type].ids) - now_ids), "delete")
    return counts
