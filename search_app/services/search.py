"""The search service: the configured backend, PostgreSQL when it is down, every search
logged for analytics."""

from __future__ import annotations

import dataclasses
import logging
import time

from django.conf import settings

from inbo.breakers import CircuitOpen
from inbo.errors import ServiceUnavailable
from search_app.backends import POSTGRES, get_backend
from search_app.backends.base import BackendUnavailable
from search_app.contracts import SearchQuery, SearchResult
from search_app.models import SearchLog
from search_app.services.query import analytics_key, normalize_query

logger = logging.getLogger(__name__)


def _answer(query: SearchQuery) -> SearchResult:
    configured = settings.SEARCH_BACKEND
    try:
        return get_backend(configured).search(query)
    except BackendUnavailable as exc:
        if configured == POSTGRES:
            logger.warning("search.unavailable backend=postgres error=%s", exc)
            raise ServiceUnavailable("Search is unavailable; try again shortly.") from exc
        # While the breaker is open every search lands here at once: one warning when it
        # opened is enough, the rest are routine.
        log_fallback = logger.info if isinstance(exc, CircuitOpen) else logger.warning
        log_fallback("search.fallback backend=%s error=%s", configured, exc)
    try:
        result = get_backend(POSTGRES).search(query)
    except BackendUnavailable as exc:
        logger.warning("search.unavailable backend=postgres error=%s", exc)
        raise ServiceUnavailable("Search is unavailable; try again shortly.") from exc
    return dataclasses.replace(result, degraded=True, backend=POSTGRES)


def search(query: SearchQuery, *, user_id: int | None) -> SearchResult:
    """Answer ``query`` (text normalized here), log it, and return the result with its
    ``search_id`` (clicks refer to it). Raises ``ServiceUnavailable`` only when PostgreSQL
    itself cannot answer."""
    query = dataclasses.replace(query, text=normalize_query(query.text))
    started = time.perf_counter()
    result = _answer(query)
    latency_ms = (time.perf_counter() - started) * 1000
    log = SearchLog.objects.create(
        query=analytics_key(query.text),
        corrected_query=(result.corrected_query or "")[:200],
        filters=_filters(query),
        doc_type=query.doc_type.value,
        sort=query.sort.value,
        page=query.offset // max(query.limit, 1) + 1,
        backend=result.backend,
        degraded=result.degraded,
        result_count=result.total,
        latency_ms=round(latency_ms, 2),
        user_id=user_id,
    )
    return dataclasses.replace(result, search_id=str(log.search_id))


def _filters(query: SearchQuery) -> dict[str, str]:
    values = {
        "category": query.category,
        "provider": query.provider,
        "language": query.language,
        "from": query.date_from.isoformat() if query.date_from else None,
        "to": query.date_to.isoformat() if query.date_to else None,
    }
    return {k: v for k, v in values.items() if v}
