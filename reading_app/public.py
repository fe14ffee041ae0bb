"""The reading_app facade: the only module other apps import from here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from reading_app import selectors
from reading_app.api.serializers import ItemListSerializer
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

# The JSON shape of an item card, for other apps' API documentation.
ItemCardSerializer = ItemListSerializer

__all__ = [
    "BulkCreateResult",
    "CategoryIn",
    "ItemCardSerializer",
    "ItemFacets",
    "ItemIn",
    "ProviderIn",
    "ReadingProgressIn",
    "SavedItemIn",
    "SubscriptionIn",
    "UpsertResult",
    "catalog_counts",
    "categories_by_id",
    "categories_upsert",
    "category_ids_by_slug",
    "category_names",
    "completed_item_ids",
    "in_progress",
    "item_cards",
    "item_facets",
    "items_published_at",
    "items_upsert",
    "providers_upsert",
    "reading_progress_bulk_create",
    "recent_item_ids",
    "saved_items_bulk_create",
    "subscribed_provider_ids",
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


def item_facets(item_ids: Sequence[int], *, cached: bool = False) -> dict[int, ItemFacets]:
    """Provider, categories, publication time and availability of items, by id.

    ``cached=True`` may serve values up to a minute old from this process (feed building).
    """
    return selectors.item_facets(item_ids, cached=cached)


def subscribed_provider_ids(*, user_id: int) -> set[int]:
    """Providers the user actively follows."""
    return selectors.subscribed_provider_ids(user_id=user_id)


def completed_item_ids(*, user_id: int) -> set[int]:
    """Items the user read to the end."""
    return selectors.completed_item_ids(user_id=user_id)


def in_progress(*, user_id: int, since: datetime, limit: int) -> list[tuple[int, float]]:
    """(item id, progress) of reads started and not finished, touched since ``since``."""
    return selectors.in_progress(user_id=user_id, since=since, limit=limit)


def recent_item_ids(
    *,
    since: datetime,
    limit: int,
    category_ids: Sequence[int] | set[int] | None = None,
    provider_ids: Sequence[int] | set[int] | None = None,
) -> list[int]:
    """Published item ids newer than ``since``, newest first (in categories/providers)."""
    return selectors.recent_item_ids(
        since=since, limit=limit, category_ids=category_ids, provider_ids=provider_ids
    )


def item_cards(item_ids: Sequence[int]) -> dict[int, dict]:
    """Published items as feed cards (id, title, summary, url, provider, categories, …),
    by id, in two queries. Unavailable or unknown ids are absent."""
    # A card shows no body: a feed page of long issues must not load them all.
    items = selectors.item_list().filter(id__in=list(item_ids)).defer("body")
    return {row["id"]: row for row in ItemListSerializer(items, many=True).data}


def category_names(category_ids: Sequence[int] | set[int]) -> dict[int, str]:
    """Display names of categories, by id."""
    return dict(Category.objects.filter(id__in=list(category_ids)).values_list("id", "name"))


def category_ids_by_slug(slugs: Sequence[str]) -> dict[str, int]:
    """Ids of the categories among ``slugs`` that exist, by slug."""
    return dict(Category.objects.filter(slug__in=list(slugs)).values_list("slug", "id"))


def categories_by_id(category_ids: Sequence[int] | set[int]) -> list[dict]:
    """Categories as ``{"slug", "name", "parent"}`` dicts, in slug order."""
    rows = Category.objects.filter(id__in=list(category_ids)).select_related("parent")
    return [
        {"slug": c.slug, "name": c.name, "parent": c.parent.slug if c.parent else None}
        for c in rows.order_by("slug")
    ]
