"""The reading_app facade: the only module other apps import from here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from reading_app import caches, selectors
from reading_app.api.serializers import ItemListSerializer, ProviderSerializer
from reading_app.contracts import (
    BulkCreateResult,
    CatalogKind,
    CatalogOp,
    CategoryIn,
    CreateMissingResult,
    ItemFacets,
    ItemIn,
    ItemSearchData,
    ProviderIn,
    ProviderSearchData,
    ReadingProgressIn,
    SavedItemIn,
    SubscriptionIn,
)
from reading_app.models import Category, Item, Provider, ReadingProgress
from reading_app.services import bulk, catalog, changes

# The JSON shape of an item card, for other apps' API documentation.
ItemCardSerializer = ItemListSerializer
# The JSON shape of a provider card (a newsletter as the catalog lists it).
ProviderCardSerializer = ProviderSerializer

__all__ = [
    "BulkCreateResult",
    "CatalogKind",
    "CatalogOp",
    "CategoryIn",
    "CreateMissingResult",
    "ItemCardSerializer",
    "ItemFacets",
    "ItemIn",
    "ItemSearchData",
    "ProviderCardSerializer",
    "ProviderIn",
    "ProviderSearchData",
    "ReadingProgressIn",
    "SavedItemIn",
    "SubscriptionIn",
    "catalog_changed_since",
    "catalog_counts",
    "categories_by_id",
    "categories_create_missing",
    "category_ids_by_slug",
    "category_names",
    "child_category_parents",
    "completed_among_sql",
    "completed_item_ids",
    "in_progress",
    "item_cards",
    "item_facets",
    "item_ids_of_providers",
    "item_search_data",
    "items_create_missing",
    "items_published_at",
    "provider_cards",
    "provider_search_data",
    "providers_create_missing",
    "reading_depths",
    "reading_progress_bulk_create",
    "reading_progress_table",
    "recent_item_ids",
    "saved_items_bulk_create",
    "searchable_counts",
    "searchable_ids",
    "subscribe_catalog_changes",
    "subscribe_reader_changes",
    "subscribed_provider_ids",
    "subscriptions_bulk_create",
    "unsubscribe_catalog_changes",
    "unsubscribe_reader_changes",
]


def categories_create_missing(categories: Sequence[CategoryIn]) -> CreateMissingResult:
    """Create missing categories (parents before children); returns ids by slug."""
    return catalog.categories_create_missing(categories)


def providers_create_missing(providers: Sequence[ProviderIn]) -> CreateMissingResult:
    """Create missing providers; returns ids by external id."""
    return catalog.providers_create_missing(providers)


def items_create_missing(items: Sequence[ItemIn]) -> CreateMissingResult:
    """Create missing items; returns ids by external id."""
    return catalog.items_create_missing(items)


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


def completed_among_sql() -> str:
    """The statement that selects (``item_id``) those of some items the user read to the
    end; named parameters ``user_id`` and ``item_ids``, a PostgreSQL array literal such as
    ``{1,2,3}``. For a caller on the request path that sends it with its own statement in
    one round trip (experience_app's never-again check on every cached home, a UNION ALL);
    it reads the unique (user_id, item_id) index."""
    return selectors.COMPLETED_AMONG


def reading_depths(
    *, user_ids: Iterable[int], item_ids: Iterable[int]
) -> dict[tuple[int, int], float]:
    """(user id, item id) -> fraction read (1.0 when finished), where progress exists: how
    the learned reranker grades a click by how far it was read."""
    return selectors.reading_depths(user_ids=user_ids, item_ids=item_ids)


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
    # Shared by every reader: served from the two-level cache (reading_app/caches.py), which
    # every process empties within a second of an item, provider or category change. The
    # cards are shared between callers: read-only.
    return caches.ITEM_CARDS.get_many(item_ids, _load_item_cards)


def _load_item_cards(item_ids: list[int]) -> dict[int, dict]:
    # A card shows no body: a feed page of long issues must not load them all.
    items = selectors.item_list().filter(id__in=item_ids).defer("body")
    return {row["id"]: dict(row) for row in ItemListSerializer(items, many=True).data}


def category_names(category_ids: Sequence[int] | set[int]) -> dict[int, str]:
    """Display names of categories, by id (from the two-level cache)."""
    return {pk: row["name"] for pk, row in _categories(category_ids).items()}


def _categories(category_ids: Iterable[int]) -> dict[int, dict]:
    """``{"slug", "name", "parent"}`` of categories, by id: shared by every reader, from the
    two-level cache (emptied in every process when a category is edited or deleted)."""
    return caches.CATEGORIES.get_many(category_ids, _load_categories)


def _load_categories(category_ids: list[int]) -> dict[int, dict]:
    rows = Category.objects.filter(id__in=category_ids).values_list(
        "id", "slug", "name", "parent__slug"
    )
    return {pk: {"slug": slug, "name": name, "parent": parent} for pk, slug, name, parent in rows}


def child_category_parents(category_ids: Sequence[int] | set[int]) -> dict[int, int]:
    """Subcategories of ``category_ids`` and the parent each belongs to (child id -> parent
    id): a topic matches items tagged with its subcategories (the tree has two levels)."""
    rows = Category.objects.filter(parent_id__in=list(category_ids))
    return {child: parent for child, parent in rows.values_list("id", "parent_id")}


def category_ids_by_slug(slugs: Sequence[str]) -> dict[str, int]:
    """Ids of the categories among ``slugs`` that exist, by slug."""
    return dict(Category.objects.filter(slug__in=list(slugs)).values_list("slug", "id"))


def categories_by_id(category_ids: Sequence[int] | set[int]) -> list[dict]:
    """Categories as ``{"slug", "name", "parent"}`` dicts, in slug order."""
    rows = _categories(category_ids).values()
    return [dict(row) for row in sorted(rows, key=lambda row: row["slug"])]


# --- Catalog changes and searchable text (search) -------------------------------------


def subscribe_catalog_changes(callback: changes.CatalogListener) -> None:
    """Call ``callback(kind, ids, op)`` whenever items or providers change.

    ``kind`` is ``"items"`` or ``"providers"``, ``ids`` a sorted list of primary keys, ``op``
    ``"upsert"`` (created, edited, categories changed) or ``"delete"``. The callback runs
    synchronously, inside the change's transaction when it has one (saves, deletes,
    category links, category slug edits, and the bulk imports of
    ``items_create_missing``/``providers_create_missing``); if it raises, that transaction
    fails. Register it once, in ``AppConfig.ready``.
    """
    changes.subscribe(callback)


def unsubscribe_catalog_changes(callback: changes.CatalogListener) -> None:
    """Stop calling ``callback`` (tests)."""
    changes.unsubscribe(callback)


def subscribe_reader_changes(callback: changes.ReaderListener) -> None:
    """Call ``callback(user_id, what)`` once a reader's own state has changed and committed:
    a subscription started, re-activated or cancelled (``"subscription"``), an item saved or
    unsaved (``"save"``), reading progress recorded (``"progress"``). Register it once, in
    ``AppConfig.ready`` (the home feed forgets the reader's cached feed)."""
    changes.subscribe_reader(callback)


def unsubscribe_reader_changes(callback: changes.ReaderListener) -> None:
    """Stop calling ``callback`` (tests)."""
    changes.unsubscribe_reader(callback)


def item_search_data(item_ids: Sequence[int], *, body_chars: int) -> dict[int, ItemSearchData]:
    """Searchable text and filters of published items, by id, in two queries; the body is
    cut to ``body_chars``. Unavailable or unknown ids are absent (nothing to index)."""
    return selectors.item_search_data(item_ids, body_chars=body_chars)


def provider_search_data(provider_ids: Sequence[int]) -> dict[int, ProviderSearchData]:
    """Searchable text and filters of providers, by id, in two queries."""
    return selectors.provider_search_data(provider_ids)


def searchable_ids(kind: CatalogKind | str) -> list[int]:
    """Every id a search index should hold: published items, or all providers; ascending."""
    if CatalogKind(kind) == CatalogKind.ITEMS:
        qs = Item.objects.filter(status=Item.Status.PUBLISHED)
        return list(qs.order_by("id").values_list("id", flat=True))
    return list(Provider.objects.order_by("id").values_list("id", flat=True))


def searchable_counts() -> dict[str, int]:
    """How many documents a complete search index holds, by kind (for drift checks)."""
    return {
        CatalogKind.ITEMS.value: Item.objects.filter(status=Item.Status.PUBLISHED).count(),
        CatalogKind.PROVIDERS.value: Provider.objects.count(),
    }


def item_ids_of_providers(provider_ids: Sequence[int] | set[int]) -> list[int]:
    """Ids of every item of these providers (their documents show the provider's name)."""
    return list(
        Item.objects.filter(provider_id__in=list(provider_ids)).values_list("id", flat=True)
    )


def catalog_changed_since(since: datetime) -> dict[str, list[int]]:
    """Ids of items and providers created or edited at or after ``since``, by kind."""
    return {
        CatalogKind.ITEMS.value: list(
            Item.objects.filter(updated_at__gte=since).values_list("id", flat=True)
        ),
        CatalogKind.PROVIDERS.value: list(
            Provider.objects.filter(updated_at__gte=since).values_list("id", flat=True)
        ),
    }


def provider_cards(provider_ids: Sequence[int]) -> dict[int, dict]:
    """Providers as cards (``ProviderCardSerializer``), by id, in two queries at most
    (served from the two-level cache, like :func:`item_cards`; read-only)."""
    return caches.PROVIDER_CARDS.get_many(provider_ids, _load_provider_cards)


def _load_provider_cards(provider_ids: list[int]) -> dict[int, dict]:
    rows = selectors.provider_list().filter(id__in=provider_ids)
    return {row["id"]: dict(row) for row in ProviderSerializer(rows, many=True).data}


def reading_progress_table() -> str:
    """The reading-progress table name (user_id, item_id, progress, started_at,
    completed_at), for analyses that aggregate it in raw SQL (experiments' reading depth)."""
    return ReadingProgress._meta.db_table
