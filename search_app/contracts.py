"""Values that cross the search_app boundary, and the shapes backends exchange.

A backend indexes two kinds of documents, the catalog's kinds (reading_app's
:class:`CatalogKind`: items and providers; search has no document type of its own), and answers a
:class:`SearchQuery` with a :class:`SearchResult`; the service in front of it logs the
search, falls back to PostgreSQL when the configured engine is down, and says so.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reading_app.contracts import CatalogKind


class Sort(enum.StrEnum):
    RELEVANCE = "relevance"
    NEWEST = "newest"


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A validated search request. ``text`` may be empty (browse with filters)."""

    text: str
    doc_type: CatalogKind = CatalogKind.ITEMS
    category: str | None = None  # category or subcategory slug
    provider: str | None = None  # provider slug (items only)
    language: str | None = None
    date_from: datetime | None = None  # published_at >= (items only)
    date_to: datetime | None = None  # published_at < (items only)
    sort: Sort = Sort.RELEVANCE
    offset: int = 0
    limit: int = 20


@dataclass(frozen=True, slots=True)
class Hit:
    """One matching document: its id, its relevance and highlighted snippets by field.

    ``highlights`` maps a text field (``title``, ``summary``, ``body``) to a snippet in which
    the document's text is HTML-escaped and matches are wrapped in ``<mark>…</mark>``; only
    fields with at least one match are present (none for an empty query).
    """

    id: int
    score: float = 0.0
    highlights: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Hit]
    total: int
    facets: dict[str, dict[str, int]] = field(default_factory=dict)  # facet -> value -> count
    corrected_query: str | None = None  # set when unknown words were corrected
    backend: str = ""
    degraded: bool = False  # answered by the fallback because the engine was down
    search_id: str | None = None  # set by the search service once the search is logged


# The keys of ``Document.fields``, built by ``search_app.services.documents`` from the
# catalog. Text, weighted in this order: ``title`` > ``provider`` (the provider's name) >
# ``summary`` > ``body`` (an excerpt). Filters and facets: ``categories`` (slugs of the
# document's categories and of their parents, so a parent matches its subcategories'
# documents), ``provider_slug``, ``language``, ``published_at`` (aware datetime; None for
# providers). ``provider_id`` is informative. Providers: ``title`` is the name, ``summary``
# the description, ``provider``/``provider_slug`` themselves, ``body`` empty.
DOCUMENT_FIELDS = (
    "title",
    "provider",
    "provider_slug",
    "provider_id",
    "summary",
    "body",
    "categories",
    "language",
    "published_at",
)


@dataclass(frozen=True, slots=True)
class Document:
    """What a backend indexes for one item or provider (built from the catalog); the keys
    of ``fields`` are :data:`DOCUMENT_FIELDS`."""

    doc_type: CatalogKind
    id: int
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class BackendHealth:
    """A backend's own view of itself, for ``search_health`` and readiness."""

    up: bool
    latency_ms: float
    documents: dict[str, int] = field(default_factory=dict)  # doc type -> documents indexed
    settings_drift: bool = False  # declared index settings differ from the live ones
    detail: str = ""
