"""The reading_app facade: the only module other apps import from here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reading_app import selectors
from reading_app.contracts import (
    BulkCreateResult,
    CategoryIn,
    ItemFacets,
    ItemIn,
    ProviderIn,
    ReadingProgressIn,
    SavedItemIn,
    SubscriptionIn,
    UpsertResult,
)
from reading_app.models import Category, Item, Provider
from reading_app.services import bulk, catalog

__all__ = [
    "BulkCreateResult",
    "CategoryIn",
    "ItemFacets",
    "ItemIn",
    "ProviderIn",
    "ReadingProgressIn",
    "SavedItemIn",
    "SubscriptionIn",
    "UpsertResult",
    "catalog_counts",
    "categories_upsert",
    "item_facets",
    "items_published_at",
    "items_upsert",
    "providers_upsert",
    "reading_progress_bulk_create",
    "saved_items_bulk_create",
    "subscriptions_bulk_create",
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


# --- Bulk reading state and lookups for imports and demo data --------------------------


def subscriptions_bulk_create(subscriptions: Sequence[SubscriptionIn]) -> BulkCreateResult:
    """Create subscriptions users do not have yet; existing ones are left as they are.

    For imports and demo data: one query per batch, ``created_at`` backdates new rows.
    """
    return bulk.subscriptions_create(subscriptions)


def saved_items_bulk_create(saved: Sequence[SavedItemIn]) -> BulkCreateResult:
    """Create saved items users do not have yet; existing ones are left as they are."""
    return bulk.saved_items_create(saved)


def reading_progress_bulk_create(progress: Sequence[ReadingProgressIn]) -> BulkCreateResult:
    """Create reading progress where users have none for the item; existing rows stay."""
    return bulk.reading_progress_create(progress)


def items_published_at(external_ids: Sequence[str]) -> dict[str, datetime]:
    """Publication time of the stored items among ``external_ids``, by external id."""
    found: dict[str, datetime] = {}
    keys = list(external_ids)
    for start in range(0, len(keys), bulk.BATCH_SIZE):
        rows = Item.objects.filter(external_id__in=keys[start : start + bulk.BATCH_SIZE])
        found.update((str(key), at) for key, at in rows.values_list("external_id", "published_at"))
    return found


def item_facets(item_ids: Sequence[int]) -> dict[int, ItemFacets]:
    """Provider, categories, publication time and availability of items, by id."""
    return selectors.item_facets(item_ids)
