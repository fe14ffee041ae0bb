"""The catalog's shared caches (``inbo.cache_l1``) and what empties them.

Every namespace is emptied for every process by the catalog changes that can alter what it
holds (docs/ARCHITECTURE.md, "Caching"):

- ``item_cards`` (an item as feeds and search show it: its provider's name and its categories'
  names too) and ``item_facets`` (provider, categories, publication, availability): an item
  edited or deleted, any provider or category edit or deletion, a category link changed. A
  new item changes no cached value (an id that did not exist is never cached), so creating
  items, the frequent write, keeps them.
- ``provider_cards``: a provider or category edited or deleted, a provider's categories.
- ``categories`` (slug, name and parent of each category): a category edited or deleted.
- ``catalog_pages`` (whole responses of the catalog API, ``inbo.api.http_cache``): any change
  at all, creations included (a new item moves every list page).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import receiver

from inbo.cache_l1 import TwoLevelCache
from reading_app.models import Category, Item, Provider

ITEM_CARDS = TwoLevelCache("item_cards", maxsize=20_000, ttl=300, l2_ttl=3600)
# Facets are small and a feed build asks for hundreds: a larger L1.
ITEM_FACETS = TwoLevelCache("item_facets", maxsize=200_000, ttl=300, l2_ttl=3600)
PROVIDER_CARDS = TwoLevelCache("provider_cards", maxsize=5_000, ttl=300, l2_ttl=3600)
CATEGORIES = TwoLevelCache("categories", maxsize=5_000, ttl=300, l2_ttl=3600)
# Rendered API responses, keyed by URL: a short L1 (they are the largest values).
CATALOG_PAGES = TwoLevelCache("catalog_pages", maxsize=2_000, ttl=60, l2_ttl=600)

_ITEMS = (ITEM_CARDS, ITEM_FACETS)
_EVERYTHING = (ITEM_CARDS, ITEM_FACETS, PROVIDER_CARDS, CATEGORIES, CATALOG_PAGES)


def _invalidate(caches: Sequence[TwoLevelCache]) -> None:
    for cache in caches:
        cache.invalidate()


def invalidate_all() -> None:
    """Empty every catalog cache, in every process (tests; a shell after bulk ``UPDATE``s,
    which send no signals)."""
    _invalidate(_EVERYTHING)


def catalog_changed(kind: str, ids: Sequence[int], op: str) -> None:
    """Listener of ``services.changes`` (every catalog change, bulk imports included): the
    API's cached pages are stale."""
    CATALOG_PAGES.invalidate()


@receiver(post_save, sender=Item, dispatch_uid="reading.caches.item_saved")
def _item_saved(sender: Any, instance: Item, created: bool = False, **kwargs: Any) -> None:
    if not created:
        _invalidate(_ITEMS)


@receiver(post_delete, sender=Item, dispatch_uid="reading.caches.item_deleted")
def _item_deleted(sender: Any, **kwargs: Any) -> None:
    _invalidate(_ITEMS)


@receiver(post_save, sender=Provider, dispatch_uid="reading.caches.provider_saved")
@receiver(post_delete, sender=Provider, dispatch_uid="reading.caches.provider_deleted")
def _provider_changed(sender: Any, created: bool = False, **kwargs: Any) -> None:
    if not created:
        _invalidate((*_ITEMS, PROVIDER_CARDS))


@receiver(post_save, sender=Category, dispatch_uid="reading.caches.category_saved")
@receiver(post_delete, sender=Category, dispatch_uid="reading.caches.category_deleted")
def _category_changed(sender: Any, created: bool = False, **kwargs: Any) -> None:
    if not created:
        # Names are shown on cards, and no change notification covers a renamed category.
        _invalidate(_EVERYTHING)


@receiver(m2m_changed, sender=Item.categories.through, dispatch_uid="reading.caches.item_cats")
def _item_categories_changed(sender: Any, action: str, **kwargs: Any) -> None:
    if action.startswith("post_"):
        _invalidate(_ITEMS)


@receiver(
    m2m_changed, sender=Provider.categories.through, dispatch_uid="reading.caches.provider_cats"
)
def _provider_categories_changed(sender: Any, action: str, **kwargs: Any) -> None:
    if action.startswith("post_"):
        _invalidate((PROVIDER_CARDS,))
