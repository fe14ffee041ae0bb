"""Helpers shared by the search tests."""

from __future__ import annotations

from datetime import UTC, datetime

from reading_app.contracts import CatalogKind
from search_app.contracts import Document


def item_doc(doc_id: int, title: str, **fields) -> Document:
    """An item document with plausible defaults; ``fields`` override them."""
    base = {
        "title": title,
        "provider": "Tech Weekly",
        "provider_slug": "tech-weekly",
        "provider_id": 1,
        "summary": "",
        "body": "",
        "categories": ["technology"],
        "language": "en",
        "published_at": datetime(2024, 1, 1, tzinfo=UTC),
    }
    return Document(CatalogKind.ITEMS, doc_id, {**base, **fields})


def provider_doc(doc_id: int, name: str, **fields) -> Document:
    base = {
        "title": name,
        "provider": name,
        "provider_slug": name.lower().replace(" ", "-"),
        "provider_id": doc_id,
        "summary": "",
        "body": "",
        "categories": ["technology"],
        "language": "en",
        "published_at": None,
    }
    return Document(CatalogKind.PROVIDERS, doc_id, {**base, **fields})


def ids(result) -> list[int]:
    return [hit.id for hit in result.hits]
