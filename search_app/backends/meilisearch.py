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
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any, cast

import meilisearch
import requests
from django.conf import settings
from meilisearch.errors import (
    MeilisearchApiError,
    MeilisearchCommunicationError,
    MeilisearchTimeoutError,
)

from search_app.backends.base import BackendUnavailable, SearchBackend
from search_app.contracts import (
    BackendHealth,
    DocType,
    Document,
    Hit,
    SearchQuery,
    SearchResult,
    Sort,
)

log = logging.getLogger(__name__)

PRIMARY_KEY = "id"
BATCH_SIZE = 5_000  # documents per add request (well under the 100 MB payload limit)
BUILD_MARK = "__build_"  # <live uid>__build_<settings hash>_<random>: an index being rebuilt

HIGHLIGHT_PRE = "<mark>"
HIGHLIGHT_POST = "</mark>"
# Meilisearch marks matches with these control characters; the snippet is then HTML-escaped
# and only they become tags, so a document's own markup can never reach a client as HTML.
_PRE, _POST = "\x02", "\x03"
CROP_WORDS = 24

# Relevance first, except that a requested sort (newest) wins over it: "sort" leads.
_RANKING_RULES = ["sort", "words", "typo", "proximity", "attribute", "exactness"]
_COMMON_SETTINGS: dict[str, Any] = {
    "rankingRules": _RANKING_RULES,
    "typoTolerance": {"enabled": True},
    "faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "count"}},
    # Exact totals and deep pages up to this many hits (PostgreSQL counts exactly).
    "pagination": {"maxTotalHits": 10_000},
}
# Searchable attributes are in weight order (title > provider > summary > body).
INDEX_SETTINGS: dict[DocType, dict[str, Any]] = {
    DocType.ITEMS: {
        **_COMMON_SETTINGS,
        "searchableAttributes": ["title", "provider", "summary", "body"],
        "filterableAttributes": ["categories", "provider_slug", "language", "published_at"],
        "sortableAttributes": ["published_at"],
    },
    DocType.PROVIDERS: {
        **_COMMON_SETTINGS,
        "searchableAttributes": ["title", "summary"],
        "filterableAttributes": ["categories", "language", "published_at"],
        "sortableAttributes": ["published_at"],
    },
}
# Result facet name -> document attribute, per doc type.
FACETS: dict[DocType, dict[str, str]] = {
    DocType.ITEMS: {"category": "categories", "provider": "provider_slug", "language": "language"},
    DocType.PROVIDERS: {"category": "categories", "language": "language"},
}
HIGHLIGHTED: dict[DocType, list[str]] = {
    DocType.ITEMS: ["title", "summary", "body"],
    DocType.PROVIDERS: ["title", "summary"],
}
CROPPED: dict[DocType, list[str]] = {
    DocType.ITEMS: ["summary", "body"],
    DocType.PROVIDERS: ["summary"],
}

# Meilisearch task status -> what the indexing task acts on.
TERMINAL = frozenset({"succeeded", "failed"})
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


class IndexingUnknown(Exception):
    """A write was enqueued but not finished by the deadline: it may still succeed or fail.
    Record the task uids and reconcile them later with :meth:`task_statuses`."""

    def __init__(self, task_uids: Sequence[int]):
        self.task_uids = list(task_uids)
        super().__init__(f"meilisearch tasks not finished in time: {self.task_uids}")


def settings_hash(declared: dict[str, Any]) -> str:
    """Short, stable fingerprint of declared settings (names build indexes, logs)."""
    canonical = json.dumps(declared, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def quote(value: str) -> str:
    """A filter string literal: the value inside double quotes, ``\\`` and ``"`` escaped, so
    user input can never close the string and add filter syntax."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _timestamp(value: datetime | date) -> int:
    if not isinstance(value, datetime):
        value = datetime.combine(value, dtime.min, tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return _timestamp(value)  # filterable and sortable as numbers
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def payload(document: Document) -> dict[str, Any]:
    """The JSON document Meilisearch stores for ``document``."""
    body = {key: _jsonable(value) for key, value in document.fields.items() if key != PRIMARY_KEY}
    body[PRIMARY_KEY] = document.id
    return body


def _snippet(formatted: str) -> str:
    escaped = html.escape(formatted, quote=False)
    return escaped.replace(_PRE, HIGHLIGHT_PRE).replace(_POST, HIGHLIGHT_POST)


def _chunks(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _same_settings(declared: Any, live: Any, key: str = "") -> bool:
    """Declared settings are live: only declared keys count (the server adds defaults);
    attribute sets whose order means nothing compare as sets."""
    if key in ("filterableAttributes", "sortableAttributes"):
        names = {
            item if isinstance(item, str) else json.dumps(item, sort_keys=True)
            for item in live or []
        }
        return names == set(declared)
    if isinstance(declared, dict):
        return isinstance(live, dict) and all(
            _same_settings(value, live.get(sub), sub) for sub, value in declared.items()
        )
    return bool(declared == live)


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
        index_settings: dict[DocType, dict[str, Any]] | None = None,
        task_timeout_s: float = 30.0,
        rebuild_timeout_s: float = 3600.0,
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

    # --- plumbing ----------------------------------------------------------------------
    @property
    def client(self) -> meilisearch.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            # The client annotates timeout as int; requests takes float seconds.
            client = meilisearch.Client(self.url, self.api_key, timeout=cast(int, self.timeout_s))
            self._local.client = client
        return client

    def index_uid(self, doc_type: DocType) -> str:
        return f"{self.index_prefix}_{doc_type.value}"

    @contextmanager
    def _engine(self, action: str) -> Iterator[None]:
        """Turn "the engine did not answer" into BackendUnavailable; let real API errors
        (a bad filter, a missing index) through as MeilisearchApiError."""
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
        doc_type = query.doc_type
        facets = FACETS[doc_type]
        params: dict[str, Any] = {
            "filter": self._filters(query),
            "facets": list(facets.values()),
            "attributesToRetrieve": [PRIMARY_KEY],
            "attributesToHighlight": HIGHLIGHTED[doc_type],
            "attributesToCrop": CROPPED[doc_type],
            "cropLength": CROP_WORDS,
            "highlightPreTag": _PRE,
            "highlightPostTag": _POST,
            "showRankingScore": True,
        }
        text = query.text.strip()
        if query.sort == Sort.NEWEST or not text:
            params["sort"] = ["published_at:desc"]
        limit = max(query.limit, 1)
        if query.offset % limit == 0:
            # Page mode counts hits exactly (up to maxTotalHits), like PostgreSQL does.
            params["hitsPerPage"] = limit
            params["page"] = query.offset // limit + 1
        else:
            params["offset"] = query.offset
            params["limit"] = limit
        with self._engine("search"):
            try:
                raw = self.client.index(self.index_uid(doc_type)).search(text, params)
            except MeilisearchApiError as exc:
                if exc.code == "index_not_found":
                    raise BackendUnavailable(
                        f"meilisearch index {self.index_uid(doc_type)} missing (run search_reindex)"
                    ) from exc
                raise
        hits = [self._hit(doc_type, hit) for hit in raw.get("hits", [])]
        total = raw.get("totalHits", raw.get("estimatedTotalHits", len(hits)))
        distribution = raw.get("facetDistribution") or {}
        return SearchResult(
            hits=hits,
            total=int(total),
            facets={name: dict(distribution.get(attr, {})) for name, attr in facets.items()},
            corrected_query=None,  # Meilisearch tolerates typos itself; nothing to report
            backend=self.name,
        )

    def _filters(self, query: SearchQuery) -> list[str]:
        filters = []
        if query.category:
            filters.append(f"categories = {quote(query.category)}")
        if query.language:
            filters.append(f"language = {quote(query.language)}")
        if query.doc_type == DocType.ITEMS:
            if query.provider:
                filters.append(f"provider_slug = {quote(query.provider)}")
            if query.date_from is not None:
                filters.append(f"published_at >= {_timestamp(query.date_from)}")
            if query.date_to is not None:
                filters.append(f"published_at < {_timestamp(query.date_to)}")
        return filters

    def _hit(self, doc_type: DocType, hit: dict[str, Any]) -> Hit:
        formatted = hit.get("_formatted") or {}
        highlights = {
            attr: _snippet(value)
            for attr in HIGHLIGHTED[doc_type]
            if isinstance(value := formatted.get(attr), str) and _PRE in value
        }
        return Hit(
            id=int(hit[PRIMARY_KEY]),
            score=float(hit.get("_rankingScore", 0.0)),
            highlights=highlights,
        )

    # --- writes ------------------------------------------------------------------------
    def upsert(self, documents: Sequence[Document]) -> None:
        self._settle(self.submit(documents))

    def delete(self, doc_type: DocType, ids: Sequence[int]) -> None:
        self._settle(self.submit_delete(doc_type, ids))

    def submit(self, documents: Sequence[Document]) -> list[int]:
        """Enqueue adds/replaces; return Meilisearch task uids (nothing is indexed yet)."""
        self.ensure_indexes()
        by_type: dict[DocType, list[dict[str, Any]]] = {}
        for document in documents:
            by_type.setdefault(document.doc_type, []).append(payload(document))
        uids = []
        with self._engine("add documents"):
            for doc_type, payloads in by_type.items():
                index = self.client.index(self.index_uid(doc_type))
                for chunk in _chunks(payloads, BATCH_SIZE):
                    uids.append(index.add_documents(list(chunk), PRIMARY_KEY).task_uid)
        return uids

    def submit_delete(self, doc_type: DocType, ids: Sequence[int]) -> list[int]:
        """Enqueue deletes by id (missing ids are fine); return task uids."""
        if not ids:
            return []
        self.ensure_indexes()
        path = f"indexes/{self.index_uid(doc_type)}/documents/delete-batch"
        uids = []
        with self._engine("delete documents"):
            for chunk in _chunks(list(ids), BATCH_SIZE):
                # The endpoint is current; only the client's helper warns about it.
                uids.append(int(self.client.http.post(path, list(chunk))["taskUid"]))
        return uids

    def _fetch_tasks(self, uids: Sequence[int]) -> dict[int, Any]:
        found: dict[int, Any] = {}
        with self._engine("tasks"):
            for chunk in _chunks(list(uids), 500):
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
        for doc_type in DocType:
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

    def settings_drift(self) -> dict[DocType, bool]:
        """Per doc type: do the live settings differ from the declared ones? A missing index
        counts as drift (a rebuild creates it)."""
        drift = {}
        for doc_type in DocType:
            with self._engine("get settings"):
                try:
                    live = self.client.index(self.index_uid(doc_type)).get_settings()
                except MeilisearchApiError as exc:
                    if exc.code != "index_not_found":
                        raise
                    drift[doc_type] = True
                    continue
            drift[doc_type] = not _same_settings(self.index_settings[doc_type], live)
        return drift

    def apply_settings_if_changed(
        self, documents: Callable[[DocType], Sequence[Document]], *, progress: Any = None
    ) -> bool:
        """Rebuild (new index, swap) only if the live settings drifted; True if it did."""
        if not any(self.settings_drift().values()):
            return False
        self.rebuild(documents, progress=progress)
        return True

    def rebuild(
        self, documents: Callable[[DocType], Sequence[Document]], *, progress: Any = None
    ) -> dict[str, int]:
        """Per doc type: build ``<live>__build_<hash>_<rand>`` with the declared settings,
        add every document in batches, wait, swap it with the live index (atomic for
        searchers), delete the old one. Writes that land on the live index while a rebuild
        runs are not in the new one: re-send changes made since the rebuild started."""
        counts = {}
        for doc_type in DocType:
            counts[doc_type.value] = self._rebuild_one(doc_type, documents, progress)
        self._ensured = True
        return counts

    def _rebuild_one(
        self,
        doc_type: DocType,
        documents: Callable[[DocType], Sequence[Document]],
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
            uids = []
            with self._engine("rebuild"):
                index = self.client.index(build)
                for chunk in _chunks([payload(d) for d in docs], BATCH_SIZE):
                    uids.append(index.add_documents(list(chunk), PRIMARY_KEY).task_uid)
            done = 0
            for uid, chunk in zip(uids, _chunks(docs, BATCH_SIZE), strict=True):
                self._settle([uid], self.rebuild_timeout_s)
                done += len(chunk)
                if progress is not None:
                    progress(doc_type, done, len(docs))
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
                "documents": len(docs),
                "seconds": round(time.monotonic() - started, 1),
                "settings_hash": settings_hash(declared),
            },
        )
        return len(docs)

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
            for doc_type in DocType
        }
        missing = [self.index_uid(t) for t in DocType if self.index_uid(t) not in stats]
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
