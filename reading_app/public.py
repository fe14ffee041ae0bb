"""The reading_app facade: the only module other apps import from here."""

from __future__ import annotations

from collections.abc import Sequence

from reading_app.contracts import CategoryIn, ItemIn, ProviderIn, UpsertResult
from reading_app.models import Category, Item, Provider
from reading_app.services import catalog

__all__ = [
    "CategoryIn",
    "ItemIn",
    "ProviderIn",
    "UpsertResult",
    "catalog_counts",
    "categories_upsert",
    "items_upsert",
    "providers_upsert",
]


def categories_upsert(categories: Sequence[CategoryIn]) -> UpsertResult:
    """Create missing categories (parents before children); returns ids by slug."""
    return catalog.categories_upsert(categories)


def providers_upsert(providers: Sequence[ProviderIn]) -> UpsertResult:
    """Create missing providers; returns ids by external id."""
    return catalog.providers_upsert(providers)


def items_upsert(items: Sequence[ItemIn]) -> UpsertResult:
    """Create missing items; returns ids by external id."""
    return catalog.items_upsert(items)


def catalog_counts() -> dict[str, int]:
    """Rows in the content catalog, for commands that report what they did."""
    return {
        "categories": Category.objects.count(),
        "providers": Provider.objects.count(),
        "items": Item.objects.count(),
    }
