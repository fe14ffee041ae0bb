"""The interface every search backend implements."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

from reading_app.contracts import CatalogKind
from search_app.contracts import BackendHealth, Document, SearchQuery, SearchResult


class BackendUnavailable(Exception):
    """The engine did not answer (down, timed out): the service falls back and degrades."""


class SearchBackend(abc.ABC):
    """Index documents and answer queries. Implementations must be safe to call from any
    process; writes come from Celery (never from a web request), reads from the API."""

    name: str = ""

    @abc.abstractmethod
    def search(self, query: SearchQuery) -> SearchResult:
        """Answer ``query``; raise :class:`BackendUnavailable` if the engine is down."""

    @abc.abstractmethod
    def upsert(self, documents: Sequence[Document]) -> None:
        """Add or replace documents. Must be idempotent. Raise BackendUnavailable or a
        backend-specific error on failure (the caller retries with backoff)."""

    @abc.abstractmethod
    def delete(self, doc_type: CatalogKind, ids: Sequence[int]) -> None:
        """Remove documents (missing ids are not an error)."""

    @abc.abstractmethod
    def rebuild(
        self, documents: Callable[[CatalogKind], Sequence[Document]], *, progress=None
    ) -> dict[str, int]:
        """Rebuild every index from scratch with zero downtime for searchers (build a new
        index, then swap). Returns documents indexed per doc type.

        ``documents(doc_type)`` is a lazy sequence: ``len()`` is cheap, slicing returns
        another lazy sequence, iterating reads the catalog in batches. ``progress``, when
        given, is called as ``progress(doc_type, done, total)`` as batches are written."""

    @abc.abstractmethod
    def health(self) -> BackendHealth:
        """Up or down, latency, documents per index, settings drift."""
