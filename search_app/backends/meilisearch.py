"""Meilisearch backend: one index per document type, settings declared here.

- **Indexes**: ``<prefix>_items`` and ``<prefix>_providers`` (``MEILISEARCH_INDEX_PREFIX``),
  primary key ``id``. A missing index is created with the declared settings on the first
  write; an existing one is never reconfigured in place (not on boot, not on write).
- **Settings changes** go live through :meth:`MeilisearchBackend.rebuild`: a new index is
  built with the declared settings, filled, then swapped with the live one (searchers never
  see a half-built index), and the old one is deleted. :meth:`settings_drift` compares the
  declared settings with the live ones; ``health()`` reports it.
- **Writes are asynchronous in Meilisearch**: :meth:`submit` / :meth:`submit_delete` enqueue
  and return task uids; :meth:`task_statuses` and :meth:`wait_for` reconcile them. A failed
  task is an error (:class:`IndexingFailed`), a task still unfinished at the deadline is
  "unknown" (:class:`IndexingUnknown`), never a success. ``upsert``/``delete`` do both.
- **Every HTTP call has a timeout** (``MEILISEARCH_TIMEOUT_SECONDS``); a connection error, a
  timeout, a 5xx or a rejected key raise :class:`BackendUnavailable`, so the search service
  falls back to PostgreSQL.
- **A circuit breaker** (:mod:`inbo.breakers`, one per backend instance, i.e. per process)
  counts those failures: after ``MEILISEARCH_BREAKER_FAILURES`` in a row, every call raises
  :class:`SearchCircuitOpen` (a ``BackendUnavailable``) without touching the network until a
  trial call after ``MEILISEARCH_BREAKER_RESET_SECONDS`` succeeds: a hung engine costs a few
  timeouts, not one per search.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import meilisearch
import requests
from django.conf import settings
from meilisearch.errors import (
    MeilisearchApiError,
    MeilisearchCommunicationError,
    MeilisearchTimeoutError,
)

from inbo.breakers import Breaker, CircuitOpen
from reading_app.contracts import CatalogKind
from search_app.backends.base import BackendUnavailable, SearchBackend
from search_app.backends.meilisearch_index import (
    BUILD_MARK,
    FACETS,
    HIGHLIGHT_POST,
    HIGHLIGHT_PRE,
    INDEX_SETTINGS,
    PRIMARY_KEY,
    chunks,
    highlights,
    payload,
    quote,
    same_settings,
    search_params,
    settings_hash,
)
from search_app.contracts import BackendHealth, Document, Hit, SearchQuery, SearchResult

__all__ = [
    "HIGHLIGHT_POST",
    "HIGHLIGHT_PRE",
    "INDEX_SETTINGS",
    "IndexMissing",
    "IndexingFailed",
    "IndexingUnknown",
    "MeilisearchBackend",
    "SearchCircuitOpen",
    "payload",
    "quote",
]

log = logging.getLogger(__name__)

# Meilisearch task status -> what the indexing task acts on.
_STATUS = {
    "enqueued": "enqueued",
    "processing": "processing",
    "succeeded": "succeeded",
    "failed": "failed",
    "canceled": "failed",  # nobody here cancels; if someone did, the write did not happen
}


class IndexingFailed(Exception):
    """Meilisearch processed a write and rejected it (e.g. an invalid document)."""

    def __init__(self, errors: dict[int, str]):
        self.task_uids = sorted(errors)
        self.errors = errors
        super().__init__(f"meilisearch tasks failed: {errors}")


class IndexingUnknown(BackendUnavailable):
    """A write was enqueued but not finished by the deadline: it may still succeed or fail.
    Record the task uids and reconcile them later with :meth:`task_statuses`. (The engine
    did not answer in time: for the caller, a kind of unavailable, retried as a whole.)"""

    def __init__(self, task_uids: Sequence[int]):
        self.task_uids = list(task_uids)
        super().__init__(f"meilisearch tasks not finished in time: {self.task_uids}")


class IndexMissing(BackendUnavailable):
    """The engine answered that the index does not exist (run ``search_reindex``): search
    cannot use it, but the engine is up, so the breaker does not count it."""


class SearchCircuitOpen(CircuitOpen, BackendUnavailable):
    """Meilisearch calls are cut off for now (its breaker is open): fall back at once."""


class MeilisearchBackend(SearchBackend):
    """Search through Meilisearch. Safe to share between threads (one client per thread:
    the official client mutates its headers per request)."""

    name = "meilisearch"

    def __init__(
        self,
        *,
        url: str | None = None,
        api_key: str | None = None,
        timeout_s: float | None = None,
        index_prefix: str | None = None,
        index_settings: dict[CatalogKind, dict[str, Any]] | None = None,
        task_timeout_s: float = 30.0,
        rebuild_timeout_s: float = 3600.0,
        breaker_failures: int | None = None,
        breaker_reset_s: float | None = None,
    ):
        self.url = (url or settings.MEILISEARCH_URL).rstrip("/")
        self.api_key = settings.MEILISEARCH_API_KEY if api_key is None else api_key
        self.timeout_s = settings.MEILISEARCH_TIMEOUT_SECONDS if timeout_s is None else timeout_s
        self.index_prefix = index_prefix or settings.MEILISEARCH_INDEX_PREFIX
        self.index_settings = index_settings or INDEX_SETTINGS
        self.task_timeout_s = task_timeout_s
        self.rebuild_timeout_s = rebuild_timeout_s
        self._local = threading.local()
        self._ensured = False
        self.breaker = Breaker(
            "meilisearch",
            fail_max=(
                settings.MEILISEARCH_BREAKER_FAILURES
                if breaker_failures is None
                else breaker_failures
            ),
            reset_timeout=(
                settings.MEILISEARCH_BREAKER_RESET_SECONDS
                if breaker_reset_s is None
                else breaker_reset_s
            ),
            failures=(BackendUnavailable,),
            # A write still queued at its deadline, or a missing index, is an engine that
            # answered.
            excluded=(IndexingUnknown, IndexMissing),
            open_error=SearchCircuitOpen,
        )

    # --- plumbing ----------------------------------------------------------------------
    @property
    def client(self) -> meilisearch.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            # The client annotates timeout as int; requests takes float seconds.
            client = meilisearch.Client(self.url, self.api_key, timeout=cast(int, self.timeout_s))
            self._local.client = client
        return client

    def index_uid(self, doc_type: CatalogKind) -> str:
        return f"{self.index_prefix}_{doc_type.value}"

    @contextmanager
    def _engine(self, action: str) -> Iterator[None]:
        """Turn "the engine did not answer" into BackendUnavailable; let real API errors
        (a bad filter, a missing index) through as MeilisearchApiError. Every call goes
        through the breaker, which counts the BackendUnavailable ones (and while open raises
        SearchCircuitOpen before anything is sent)."""
        with self.breaker.guard():
            try:
                yield
            except (MeilisearchCommunicationError, MeilisearchTimeoutError) as exc:
                raise BackendUnavailable(f"meilisearch {action}: {exc.message}") from exc
            except requests.RequestException as exc:
                raise BackendUnavailable(f"meilisearch {action}: {exc}") from exc
            except MeilisearchApiError as exc:
                if exc.status_code >= 500 or exc.status_code in (401, 403):
                    raise BackendUnavailable(f"meilisearch {action}: {exc.message}") from exc
                raise

    # --- reads -------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchResult:
        uid = self.index_uid(query.doc_type)
        with self._engine("search"):
            try:
                raw = self.client.index(uid).search(query.text.strip(), search_params(query))
            except MeilisearchApiError as exc:
                if exc.code == "index_not_found":
                    raise IndexMissing(
                        f"meilisearch index {uid} missing (run search_reindex)"
                    ) from exc
                raise
        hits = [
            Hit(
                id=int(hit[PRIMARY_KEY]),
                score=float(hit.get("_rankingScore", 0.0)),
                highlights=highlights(hit.get("_formatted") or {}),
            )
            for hit in raw.get("hits", [])
        ]
        distribution = raw.get("facetDistribution") or {}
        return SearchResult(
            hits=hits,
            total=int(raw.get("totalHits", raw.get("estimatedTotalHits", len(hits)))),
            facets={
                name: dict(distribution.get(attr, {}))
                for name, attr in FACETS[query.doc_type].items()
            },
            corrected_query=None,  # Meilisearch tolerates typos itself; nothing to report
            backend=self.name,
        )

    # --- writes ------------------------------------------------------------------------
    def upsert(self, documents: Sequence[Document]) -> None:
        self._settle(self.submit(documents))

    def delete(self, doc_type: CatalogKind, ids: Sequence[int]) -> None:
        self._settle(self.submit_delete(doc_type, ids))

    def submit(self, documents: Sequence[Document]) -> list[int]:
        """Enqueue adds/replaces; return Meilisearch task uids (nothing is indexed yet)."""
        self.ensure_indexes()
        by_type: dict[CatalogKind, list[dict[str, Any]]] = {}
        for document in documents:
            by_type.setdefault(document.doc_type, []).append(payload(document))
        uids = []
        with self._engine("add documents"):
            for doc_type, payloads in by_type.items():
                index = self.client.index(self.index_uid(doc_type))
                for chunk in chunks(payloads):
                    uids.append(index.add_documents(list(chunk), PRIMARY_KEY).task_uid)
        return uids

    def submit_each(self, documents: Sequence[Document]) -> dict[int, int]:
        """Enqueue one task per document; return document id -> task uid. For finding the
        bad documents of a failed batch: Meilisearch fails only the bad document's task,
        even when it processes the tasks together, so one :meth:`wait_for` settles all."""
        self.ensure_indexes()
        uids = {}
        with self._engine("add documents"):
            for document in documents:
                index = self.client.index(self.index_uid(document.doc_type))
                uids[document.id] = index.add_documents([payload(document)], PRIMARY_KEY).task_uid
        return uids

    def submit_delete(self, doc_type: CatalogKind, ids: Sequence[int]) -> list[int]:
        """Enqueue deletes by id (missing ids are fine); return task uids."""
        if not ids:
            return []
        self.ensure_indexes()
        path = f"indexes/{self.index_uid(doc_type)}/documents/delete-batch"
        uids = []
        with self._engine("delete documents"):
            for chunk in chunks(list(ids)):
                # The endpoint is current; only the client's helper warns about it.
                uids.append(int(self.client.http.post(path, list(chunk))["taskUid"]))
        return uids

    def _fetch_tasks(self, uids: Sequence[int]) -> dict[int, Any]:
        found: dict[int, Any] = {}
        with self._engine("tasks"):
            for chunk in chunks(list(uids), 500):
                params = {"uids": ",".join(str(u) for u in chunk), "limit": len(chunk)}
                for task in self.client.get_tasks(params).results:
                    found[task.uid] = task
        return found

    def task_statuses(self, uids: Sequence[int]) -> dict[int, str]:
        """Status of each task: ``enqueued``, ``processing``, ``succeeded``, ``failed``, or
        ``unknown`` (Meilisearch no longer knows the task). One request per 500 uids."""
        tasks = self._fetch_tasks(uids)
        return {
            uid: _STATUS.get(tasks[uid].status, "unknown") if uid in tasks else "unknown"
            for uid in uids
        }

    def task_errors(self, uids: Sequence[int]) -> dict[int, str]:
        """Error message of each failed task among ``uids`` (for logs and dead letters)."""
        tasks = self._fetch_tasks(uids)
        return {
            uid: str((task.error or {}).get("message", task.status))
            for uid, task in tasks.items()
            if _STATUS.get(task.status) == "failed"
        }

    def wait_for(self, uids: Sequence[int], timeout_s: float) -> dict[int, str]:
        """Poll until every task is finished or ``timeout_s`` passed. Tasks still enqueued
        or processing at the deadline are ``unknown``: not a success, reconcile later."""
        deadline = time.monotonic() + timeout_s
        statuses = {uid: "unknown" for uid in uids}
        pending = list(uids)
        pause = 0.02
        while pending:
            statuses.update(self.task_statuses(pending))
            pending = [uid for uid in pending if statuses[uid] in ("enqueued", "processing")]
            if not pending:
                break
            if time.monotonic() + pause > deadline:
                for uid in pending:
                    statuses[uid] = "unknown"
                break
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
        return statuses

    def _settle(self, uids: Sequence[int], timeout_s: float | None = None) -> None:
        if not uids:
            return
        statuses = self.wait_for(uids, self.task_timeout_s if timeout_s is None else timeout_s)
        failed = [uid for uid, status in statuses.items() if status == "failed"]
        if failed:
            raise IndexingFailed(self.task_errors(failed))
        unknown = [uid for uid, status in statuses.items() if status != "succeeded"]
        if unknown:
            raise IndexingUnknown(unknown)

    # --- indexes and settings ----------------------------------------------------------
    def ensure_indexes(self) -> None:
        """Create missing indexes with the declared settings (once per process). Existing
        indexes are left as they are, drifted or not: only a rebuild changes them."""
        if self._ensured:
            return
        for doc_type in CatalogKind:
            uid = self.index_uid(doc_type)
            if self._exists(uid):
                continue
            log.info("search.meilisearch.index_create", extra={"index": uid})
            with self._engine("create index"):
                created = self.client.create_index(uid, {"primaryKey": PRIMARY_KEY}).task_uid
                configured = self.client.index(uid).update_settings(self.index_settings[doc_type])
            statuses = self.wait_for([created, configured.task_uid], self.task_timeout_s)
            errors = self.task_errors([u for u, s in statuses.items() if s == "failed"])
            # Another process creating it at the same moment is fine.
            if any("already exists" not in message for message in errors.values()):
                raise IndexingFailed(errors)
            if "unknown" in statuses.values():
                raise IndexingUnknown(list(statuses))
        self._ensured = True

    def _exists(self, uid: str) -> bool:
        with self._engine("get index"):
            try:
                self.client.get_raw_index(uid)
            except MeilisearchApiError as exc:
                if exc.code == "index_not_found":
                    return False
                raise
        return True

    def settings_drift(self) -> dict[CatalogKind, bool]:
        """Per doc type: do the live settings differ from the declared ones? A missing index
        counts as drift (a rebuild creates it)."""
        drift = {}
        for doc_type in CatalogKind:
            with self._engine("get settings"):
                try:
                    live = self.client.index(self.index_uid(doc_type)).get_settings()
                except MeilisearchApiError as exc:
                    if exc.code != "index_not_found":
                        raise
                    drift[doc_type] = True
                    continue
            drift[doc_type] = not same_settings(self.index_settings[doc_type], live)
        return drift

    def apply_settings_if_changed(
        self, documents: Callable[[CatalogKind], Sequence[Document]], *, progress: Any = None
    ) -> bool:
        """Rebuild (new index, swap) only if the live settings drifted; True if it did."""
        if not any(self.settings_drift().values()):
            return False
        self.rebuild(documents, progress=progress)
        return True

    def rebuild(
        self, documents: Callable[[CatalogKind], Sequence[Document]], *, progress: Any = None
    ) -> dict[str, int]:
        """Per doc type: build ``<live>__build_<hash>_<rand>`` with the declared settings,
        add every document in batches, wait, swap it with the live index (atomic for
        searchers), delete the old one. Writes that land on the live index while a rebuild
        runs are not in the new one: re-send changes made since the rebuild started."""
        counts = {}
        for doc_type in CatalogKind:
            counts[doc_type.value] = self._rebuild_one(doc_type, documents, progress)
        self._ensured = True
        return counts

    def _rebuild_one(
        self,
        doc_type: CatalogKind,
        documents: Callable[[CatalogKind], Sequence[Document]],
        progress: Any,
    ) -> int:
        live = self.index_uid(doc_type)
        declared = self.index_settings[doc_type]
        build = f"{live}{BUILD_MARK}{settings_hash(declared)}_{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        self._drop_stale_builds(live)
        with self._engine("rebuild"):
            created = self.client.create_index(build, {"primaryKey": PRIMARY_KEY}).task_uid
            configured = self.client.index(build).update_settings(declared).task_uid
        try:
            self._settle([created, configured])
            docs = documents(doc_type)
            total = self._fill(build, doc_type, docs, progress)
            live_exists = self._exists(live)
            swap: dict[str, Any] = {"indexes": [live, build]}
            if not live_exists:
                # First build: the new index just takes the live name (renamed: first -> second).
                swap = {"indexes": [build, live], "rename": True}
            with self._engine("swap"):
                swapped = self.client.swap_indexes([swap]).task_uid
            self._settle([swapped])
        except BaseException:
            self._delete_quietly(build)
            raise
        if live_exists:
            self._delete_quietly(build)  # after the swap, ``build`` names the old index
        log.info(
            "search.meilisearch.rebuilt",
            extra={
                "index": live,
                "documents": total,
                "seconds": round(time.monotonic() - started, 1),
                "settings_hash": settings_hash(declared),
            },
        )
        return total

    def _fill(
        self, uid: str, doc_type: CatalogKind, docs: Sequence[Document], progress: Any
    ) -> int:
        """Send ``docs`` batch by batch (read lazily while the engine indexes the previous
        ones); report progress as batches succeed; raise on the first failed batch."""
        total = len(docs)
        pending: list[tuple[int, int]] = []  # (task uid, documents), in order
        done = 0

        def collect(wait: bool) -> None:
            nonlocal done
            if not pending:
                return
            uids = [uid for uid, _ in pending]
            if wait:
                statuses = self.wait_for(uids, self.rebuild_timeout_s)
            else:
                statuses = self.task_statuses(uids)
            failed = [u for u in uids if statuses[u] == "failed"]
            if failed:
                raise IndexingFailed(self.task_errors(failed))
            while pending and statuses[pending[0][0]] == "succeeded":
                done += pending.pop(0)[1]
                if progress is not None:
                    progress(doc_type, done, total)
            if wait and pending:
                raise IndexingUnknown([uid for uid, _ in pending])

        index = self.client.index(uid)
        for chunk in chunks(docs):
            batch = [payload(document) for document in chunk]  # skips deleted documents
            if not batch:
                continue
            with self._engine("rebuild"):
                pending.append((index.add_documents(batch, PRIMARY_KEY).task_uid, len(batch)))
            collect(wait=False)
        collect(wait=True)
        return done

    def _drop_stale_builds(self, live: str) -> None:
        """Delete build indexes a crashed rebuild left behind."""
        with self._engine("list indexes"):
            # (The client annotates get_raw_indexes as a list; the route returns a page.)
            indexes = self.client.http.get("indexes?limit=1000").get("results", [])
        for index in indexes:
            if index["uid"].startswith(f"{live}{BUILD_MARK}"):
                self._delete_quietly(index["uid"])

    def _delete_quietly(self, uid: str) -> None:
        try:
            with self._engine("delete index"):
                self._settle([self.client.delete_index(uid).task_uid])
        except (BackendUnavailable, IndexingFailed, IndexingUnknown, MeilisearchApiError):
            log.warning("search.meilisearch.index_delete_failed", extra={"index": uid})

    # --- health ------------------------------------------------------------------------
    def health(self) -> BackendHealth:
        started = time.perf_counter()
        try:
            with self._engine("health"):
                self.client.health()
            latency_ms = (time.perf_counter() - started) * 1000
            with self._engine("stats"):
                stats = self.client.get_all_stats().get("indexes", {})
            drift = self.settings_drift()
        except (BackendUnavailable, MeilisearchApiError) as exc:
            return BackendHealth(
                up=False, latency_ms=(time.perf_counter() - started) * 1000, detail=str(exc)
            )
        documents = {
            doc_type.value: int(stats.get(self.index_uid(doc_type), {}).get("numberOfDocuments", 0))
            for doc_type in CatalogKind
        }
        missing = [self.index_uid(t) for t in CatalogKind if self.index_uid(t) not in stats]
        drifted = [self.index_uid(t) for t, d in drift.items() if d]
        detail = "; ".join(
            part
            for part in (
                f"missing indexes: {', '.join(missing)}" if missing else "",
                f"settings drift: {', '.join(drifted)}" if drifted else "",
            )
            if part
        )
        return BackendHealth(
            up=True,
            latency_ms=latency_ms,
            documents=documents,
            settings_drift=any(drift.values()),
            detail=detail,
        )
