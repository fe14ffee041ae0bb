"""The catalog's shared caches (reading_app/caches.py): cards and facets served without
queries, and emptied in every process by the changes that alter them."""

from __future__ import annotations

import pytest

from reading_app import caches, public
from reading_app.models import Item
from tests.factories import CategoryFactory, ItemFactory, ProviderFactory

pytestmark = pytest.mark.django_db


def _another_process() -> None:
    """What a second web worker has: Redis, but nothing of this process's memory."""
    for cache in (caches.ITEM_CARDS, caches.ITEM_FACETS, caches.PROVIDER_CARDS, caches.CATEGORIES):
        cache.clear_local()


def test_item_cards_are_shared_and_follow_an_edit(django_assert_num_queries):
    item = ItemFactory(title="Before")
    with django_assert_num_queries(2):  # items with their provider, then categories
        assert public.item_cards([item.id])[item.id]["title"] == "Before"
    _another_process()
    with django_assert_num_queries(0):  # from Redis
        assert public.item_cards([item.id])[item.id]["title"] == "Before"

    item.title = "After"
    item.save()
    assert public.item_cards([item.id])[item.id]["title"] == "After"
    _another_process()
    with django_assert_num_queries(0):  # the new card is in Redis for the others
        assert public.item_cards([item.id])[item.id]["title"] == "After"


def test_a_new_item_keeps_the_cards_a_provider_rename_drops_them(django_assert_num_queries):
    provider = ProviderFactory(name="Old name")
    item = ItemFactory(provider=provider)
    public.item_cards([item.id])
    fresh = ItemFactory(provider=provider)  # created, not edited: nothing cached changes
    with django_assert_num_queries(2):  # only the new card is loaded
        cards = public.item_cards([item.id, fresh.id])
    assert set(cards) == {item.id, fresh.id}

    provider.name = "New name"
    provider.save()
    assert public.item_cards([item.id])[item.id]["provider"]["name"] == "New name"
    assert public.provider_cards([provider.id])[provider.id]["name"] == "New name"


def test_a_renamed_category_reaches_item_and_provider_cards():
    topic = CategoryFactory(name="Tech", slug="tech")
    provider = ProviderFactory(categories=[topic])
    item = ItemFactory(provider=provider, categories=[topic])
    public.item_cards([item.id])
    public.provider_cards([provider.id])
    assert public.category_names([topic.id]) == {topic.id: "Tech"}
    topic.name = "Technology"  # the slug stays: no search change is announced
    topic.save()
    _another_process()
    assert public.category_names([topic.id]) == {topic.id: "Technology"}
    assert public.categories_by_id([topic.id]) == [
        {"slug": "tech", "name": "Technology", "parent": None}
    ]
    assert public.item_cards([item.id])[item.id]["categories"][0]["name"] == "Technology"
    assert public.provider_cards([provider.id])[provider.id]["categories"][0]["name"] == (
        "Technology"
    )


def test_an_unpublished_item_leaves_cards_and_facets():
    item = ItemFactory()
    assert public.item_facets([item.id], cached=True)[item.id].available is True
    assert item.id in public.item_cards([item.id])
    item.status = Item.Status.UNAVAILABLE
    item.save()
    _another_process()
    assert public.item_facets([item.id], cached=True)[item.id].available is False
    assert public.item_cards([item.id]) == {}


def test_categories_are_named_from_the_cache_in_slug_order(django_assert_num_queries):
    tech = CategoryFactory(name="Tech", slug="tech")
    ai = CategoryFactory(name="AI", slug="ai", parent=tech)
    with django_assert_num_queries(1):
        assert public.categories_by_id([tech.id, ai.id]) == [
            {"slug": "ai", "name": "AI", "parent": "tech"},
            {"slug": "tech", "name": "Tech", "parent": None},
        ]
    with django_assert_num_queries(0):
        assert public.category_names([ai.id]) == {ai.id: "AI"}
    assert public.category_names([10**12]) == {}  # unknown: asked again, never cached


def test_deleting_an_item_forgets_its_card():
    item = ItemFactory()
    public.item_cards([item.id])
    item_id = item.id
    item.delete()
    assert public.item_cards([item_id]) == {}
