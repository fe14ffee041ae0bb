"""The search_app facade: the only module other apps import from here (monitoring)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings

from reading_app import public as reading
from reading_app.contracts import CatalogKind
from search_app import selectors
from search_app.backends import POSTGRES, get_backend
from search_app.backends.base import BackendUnavailable
from search_app.contracts import BackendHealth
from search_app.services import indexing, outbox
from search_app.services.documents import catalog_documents, documents_for

if TYPE_CHECKING:
    from search_app.backends.meilisearch import MeilisearchBackend

# ``health`` is for monitoring; the others let bench/search_meilisearch.py time a
# Meilisearch backend of its own on the catalog's documents without reaching inside.
__all__ = ["catalog_documents", "documents_for", "health", "meilisearch_backend"]


def meilisearch_backend(**options: Any) -> MeilisearchBackend:
    """A Meilisearch backend of its own, not the shared one (``index_prefix``, ``timeout_s``,
    ``rebuild_timeout_s``, … as :class:`MeilisearchBackend` takes them)."""
    # Imported here, as get_backend does: the client library loads only when it is used.
    from search_app.backends.meilisearch import MeilisearchBackend

    return MeilisearchBackend(**options)


def _backend_health(name: str) -> BackendHealth:
    try:
        return get_backend(name).health()
    except BackendUnavailable as exc:
        return BackendHealth(up=False, latency_ms=0.0, detail=str(exc))


def _index_figures(health: BackendHealth, expected: dict[str, int]) -> dict[str, Any]:
    return {
        "up": health.up,
        "latency_ms": round(health.latency_ms, 2),
        "documents": {t.value: health.documents.get(t.value, 0) for t in CatalogKind},
        # Documents in the index minus documents the catalog says it should hold.
        "drift": {
            t.value: health.documents.get(t.value, 0) - expected[t.value] for t in CatalogKind
        }
        if health.up
        else None,
        "settings_drift": health.settings_drift,
        "detail": health.detail,
    }


def health() -> dict[str, Any]:
    """The state of search, for ``manage.py search_health``, readiness and metrics.

    ``{"backend": name, "up", "latency_ms", "documents": {items, providers}, "database":
    {items, providers} (what a complete index holds), "drift": {items, providers} (index
    minus database; None when down), "settings_drift", "detail", "fallback": the same
    figures for PostgreSQL's index when another backend is configured (else None),
    "outbox": {pending, in_flight, failed, dead}, "oldest_pending_age_seconds" (None when
    nothing waits), "last_indexed_at" (ISO time or None), "last_indexed_age_seconds",
    "recent_searches", "search_latency_p95_ms", "zero_result_rate" (last 15 minutes)}``.
    The engine's own calls are bounded by its timeouts; the rest is a few PostgreSQL counts
    and one Redis GET.
    """
    name = settings.SEARCH_BACKEND
    expected = reading.searchable_counts()
    figures = {"backend": name, **_index_figures(_backend_health(name), expected)}
    figures["database"] = expected
    figures["fallback"] = (
        {"backend": POSTGRES, **_index_figures(_backend_health(POSTGRES), expected)}
        if name != POSTGRES
        else None
    )
    figures.update(selectors.recent_figures())
    stats = outbox.stats()
    figures["outbox"] = stats["by_status"]
    figures["oldest_pending_age_seconds"] = stats["oldest_pending_age_seconds"]
    last = indexing.last_indexed_at()
    figures["last_indexed_at"] = (
        datetime.fromtimestamp(last, tz=UTC).isoformat() if last is not None else None
    )
    figures["last_indexed_age_seconds"] = (
        max(0.0, datetime.now(tz=UTC).timestamp() - last) if last is not None else None
    )
    return figures
