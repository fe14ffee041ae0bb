from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inbo.errors import InvalidInput
from reading_app.contracts import CategoryIn, ItemIn, ProviderIn
from reading_app.models import Item, Provider
from reading_app.services import catalog

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def _world() -> None:
    catalog.categories_create_missing(
        [CategoryIn("tech", "Technology"), CategoryIn("tech-ai", "AI", parent_slug="tech")]
    )
    catalog.providers_create_missing(
        [ProviderIn("ext:p1", "p1", "P One", category_slugs=("tech", "tech-ai"))]
    )


def test_create_missing_is_idempotent_and_returns_ids():
    _world()
    items = [
        ItemIn("ext:i1", "ext:p1", "Hello", WHEN, body="word " * 461, category_slugs=("tech-ai",)),
        ItemIn("ext:i2", "ext:p1", "Gone", WHEN, available=False),
    ]
    first = catalog.items_create_missing(items)
    second = catalog.items_create_missing(items)
    assert first.created == 2 and second.created == 0
    assert first.ids == second.ids
    hello = Item.objects.get(external_id="ext:i1")
    assert hello.word_count == 461
    assert hello.reading_time_minutes == 3  # 461 words at 230 per minute, rounded up
    assert [c.slug for c in hello.categories.all()] == ["tech-ai"]
    assert Item.objects.get(external_id="ext:i2").status == Item.Status.UNAVAILABLE


def test_create_missing_leaves_existing_rows_as_they_are():
    _world()
    catalog.items_create_missing([ItemIn("ext:i1", "ext:p1", "Hello", WHEN, url="https://e.x/")])
    again = catalog.items_create_missing([ItemIn("ext:i1", "ext:p1", "Renamed", WHEN, body="b")])
    renamed = catalog.providers_create_missing([ProviderIn("ext:p1", "p1", "Renamed")])
    assert again.created == 0 and renamed.created == 0
    assert Item.objects.get(external_id="ext:i1").title == "Hello"
    assert Provider.objects.get(external_id="ext:p1").name == "P One"


def test_a_subcategory_cannot_have_subcategories():
    _world()
    with pytest.raises(InvalidInput) as exc:
        catalog.categories_create_missing([CategoryIn("tech-ai-llm", "LLM", parent_slug="tech-ai")])
    assert exc.value.details == {"parents": ["tech-ai"]}


def test_unknown_parent_category_and_provider_are_reported():
    with pytest.raises(InvalidInput):
        catalog.categories_create_missing([CategoryIn("x-y", "Y", parent_slug="x")])
    with pytest.raises(InvalidInput) as exc:
        catalog.items_create_missing([ItemIn("ext:i9", "ext:nope", "T", WHEN, url="https://e.x/")])
    assert exc.value.details == {"providers": ["ext:nope"]}
    _world()
    with pytest.raises(InvalidInput):
        catalog.providers_create_missing(
            [ProviderIn("ext:p2", "p2", "P2", category_slugs=("nope",))]
        )


def test_cached_facets_are_served_without_queries(django_assert_num_queries):
    from reading_app import selectors
    from tests.factories import ItemFactory

    item = ItemFactory()
    with django_assert_num_queries(2):
        first = selectors.item_facets([item.id], cached=True)
    with django_assert_num_queries(0):
        assert selectors.item_facets([item.id], cached=True) == first
    Item.objects.filter(id=item.id).update(status=Item.Status.UNAVAILABLE)
    assert selectors.item_facets([item.id])[item.id].available is False  # uncached: fresh
    selectors.facets_cache_clear()
    assert selectors.item_facets([item.id], cached=True)[item.id].available is False
