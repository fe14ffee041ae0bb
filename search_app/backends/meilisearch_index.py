"""What the Meilisearch indexes look like: declared settings, stored documents, filters
and snippets. Pure declarations and functions; the backend (``meilisearch.py``) talks to
the server.
"""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any

from reading_app.contracts import CatalogKind
from search_app.contracts import Document, SearchQuery, Sort

PRIMARY_KEY = "id"
BATCH_SIZE = 5_000  # documents per add request (well under the 100 MB payload limit)
BUILD_MARK = "__build_"  # <live uid>__build_<settings hash>_<random>: an index being rebuilt

HIGHLIGHT_PRE = "<mark>"
HIGHLIGHT_POST = "</mark>"
# Meilisearch marks matches with these control characters; the snippet is then HTML-escaped
# and only they become tags, so a document's own markup can never reach a client as HTML.
PRE, POST = "\x02", "\x03"
CROP_WORDS = 24

# Weight order of the text fields: title > provider > summary > body (``DOCUMENT_FIELDS``).
SEARCHABLE = ["title", "provider", "summary", "body"]
# Relevance, then newest, then highest id (PostgreSQL's order); a requested sort (newest,
# or an empty query) comes before relevance: "sort" leads.
_RANKING_RULES = [
    "sort",
    "words",
    "typo",
    "proximity",
    "attribute",
    "exactness",
    "published_at:desc",
    "id:desc",
]
NEWEST = ["published_at:desc", "id:desc"]
_SETTINGS: dict[str, Any] = {
    "searchableAttributes": SEARCHABLE,
    "filterableAttributes": ["categories", "provider_slug", "language", "published_at"],
    "sortableAttributes": ["published_at", "id"],
    "rankingRules": _RANKING_RULES,
    "typoTolerance": {"enabled": True},
    "faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "count"}},
    # Exact totals, as PostgreSQL gives (page mode counts up to this; measured free at 100k
    # documents). Deep offsets still cost: the API caps them.
    "pagination": {"maxTotalHits": 1_000_000},
}
# Changing these is a deployment step: health reports drift until ``search_reindex``
# builds new indexes with them and swaps them in.
INDEX_SETTINGS: dict[CatalogKind, dict[str, Any]] = {
    CatalogKind.ITEMS: _SETTINGS,
    CatalogKind.PROVIDERS: _SETTINGS,
}
# Result facet name -> document attribute, per doc type.
FACETS: dict[CatalogKind, dict[str, str]] = {
    CatalogKind.ITEMS: {
        "category": "categories",
        "provider": "provider_slug",
        "language": "language",
    },
    CatalogKind.PROVIDERS: {"category": "categories", "language": "language"},
}
HIGHLIGHTED = ["title", "summary", "body"]
CROPPED = ["summary", "body"]


def settings_hash(declared: dict[str, Any]) -> str:
    """Short, stable fingerprint of declared settings (names build indexes, logs)."""
    canonical = json.dumps(declared, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def same_settings(declared: Any, live: Any, key: str = "") -> bool:
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
            same_settings(value, live.get(sub), sub) for sub, value in declared.items()
        )
    return bool(declared == live)


def quote(value: str) -> str:
    """A filter string literal: the value inside double quotes, ``\\`` and ``"`` escaped, so
    user input can never close the string and add filter syntax."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def timestamp(value: datetime | date) -> int:
    if not isinstance(value, datetime):
        value = datetime.combine(value, dtime.min, tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return timestamp(value)  # filterable and sortable as numbers
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


def chunks(seq: Sequence[Any], size: int | None = None) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``size`` (default ``BATCH_SIZE``); a lazy sequence's slices
    stay lazy, so a rebuild never holds the whole catalog."""
    size = size or BATCH_SIZE
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def filters(query: SearchQuery) -> list[str]:
    """Filter expressions (ANDed): user values only ever inside :func:`quote`."""
    found = []
    if query.category:
        found.append(f"categories = {quote(query.category)}")
    if query.language:
        found.append(f"language = {quote(query.language)}")
    if query.doc_type == CatalogKind.ITEMS:
        if query.provider:
            found.append(f"provider_slug = {quote(query.provider)}")
        if query.date_from is not None:
            found.append(f"published_at >= {timestamp(query.date_from)}")
        if query.date_to is not None:
            found.append(f"published_at < {timestamp(query.date_to)}")
    return found


def search_params(query: SearchQuery) -> dict[str, Any]:
    """The search request body for ``query`` (without ``q``)."""
    params: dict[str, Any] = {
        "filter": filters(query),
        "facets": list(FACETS[query.doc_type].values()),
        "attributesToRetrieve": [PRIMARY_KEY],
        "attributesToHighlight": HIGHLIGHTED,
        "attributesToCrop": CROPPED,
        "cropLength": CROP_WORDS,
        "highlightPreTag": PRE,
        "highlightPostTag": POST,
        "showRankingScore": True,
        # Every word must match (typos allowed, the last word as a prefix), as in PostgreSQL;
        # Meilisearch's default drops words from the end until something matches.
        "matchingStrategy": "all",
    }
    if query.sort == Sort.NEWEST or not query.text.strip():
        params["sort"] = NEWEST
    limit, offset = max(query.limit, 0), max(query.offset, 0)
    if limit == 0 or offset % limit == 0:
        # Page mode counts hits exactly (up to maxTotalHits), like PostgreSQL does.
        params["hitsPerPage"] = limit
        params["page"] = offset // limit + 1 if limit else 1
    else:
        params["offset"] = offset
        params["limit"] = limit
    return params


def highlights(formatted: dict[str, Any]) -> dict[str, str]:
    """Snippets of the fields with a match: escaped text, matches in ``<mark>``."""
    return {
        field: html.escape(value, quote=False)
        .replace(PRE, HIGHLIGHT_PRE)
        .replace(POST, HIGHLIGHT_POST)
        for field in HIGHLIGHTED
        if isinstance(value := formatted.get(field), str) and PRE in value
    }
