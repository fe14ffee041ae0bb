"""Database constraints, model validation and ``__str__`` of the content core."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from inbo.errors import InvalidInput, NotFound
from reading_app.models import Category, Item, ReadingProgress, SavedItem, Subscription
from reading_app.services import reading
from tests.factories import (
    CategoryFactory,
    ItemFactory,
    ProviderFactory,
    ReadingProgressFactory,
    SavedItemFactory,
    SubscriptionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


# --- Constraints the database enforces ---------------------------------------------------


@pytest.mark.parametrize("progress", [-0.01, 1.0001, 2.0, float("nan")])
def test_progress_outside_0_1_is_rejected_by_the_database(progress):
    row = ReadingProgressFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ReadingProgress.objects.filter(pk=row.pk).update(progress=progress)


@pytest.mark.parametrize("progress", [0.0, 0.5, 1.0])
def test_progress_bounds_are_accepted_by_the_database(progress):
    row = ReadingProgressFactory(progress=progress)
    row.refresh_from_db()
    assert row.progress == progress


def test_progress_is_unique_per_user_and_item():
    row = ReadingProgressFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        ReadingProgressFactory(user=row.user, item=row.item)


def test_subscription_is_unique_per_user_and_provider():
    sub = SubscriptionFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        SubscriptionFactory(user=sub.user, provider=sub.provider)
    assert SubscriptionFactory(user=sub.user).pk  # another provider is fine


def test_save_is_unique_per_user_and_item():
    saved = SavedItemFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        SavedItemFactory(user=saved.user, item=saved.item)
    assert SavedItemFactory(item=saved.item).pk  # another user may save it too


def test_published_item_needs_a_body_or_a_url():
    with pytest.raises(IntegrityError), transaction.atomic():
        ItemFactory(body="", url="")


@pytest.mark.parametrize(
    "fields",
    [
        {"body": "Some words.", "url": ""},
        {"body": "", "url": "https://example.com/issue/1"},
        {"body": "", "url": "", "status": Item.Status.UNAVAILABLE},
    ],
    ids=["body-only", "url-only", "unavailable-without-content"],
)
def test_item_with_body_or_url_or_unavailable_is_accepted(fields):
    assert ItemFactory(**fields).pk


def test_category_cannot_be_its_own_parent_in_the_database():
    category = CategoryFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Category.objects.filter(pk=category.pk).update(parent=category)


# --- Category tree: two levels -----------------------------------------------------------


def test_subcategory_of_a_top_level_category_is_valid():
    child = Category(name="AI", slug="ai", parent=CategoryFactory(slug="tech"))
    child.full_clean()


def test_subcategory_of_a_subcategory_is_rejected():
    tech = CategoryFactory(slug="tech")
    ai = CategoryFactory(slug="ai", parent=tech)
    grandchild = Category(name="LLMs", slug="llms", parent=ai)
    with pytest.raises(ValidationError) as excinfo:
        grandchild.full_clean()
    assert "parent" in excinfo.value.message_dict


def test_category_with_subcategories_cannot_become_a_subcategory():
    tech = CategoryFactory(slug="tech")
    CategoryFactory(slug="ai", parent=tech)
    tech.parent = CategoryFactory(slug="science")
    with pytest.raises(ValidationError) as excinfo:
        tech.full_clean()
    assert "parent" in excinfo.value.message_dict


def test_category_cannot_be_its_own_parent_in_validation():
    category = CategoryFactory()
    category.parent = category
    with pytest.raises(ValidationError):
        category.full_clean()


# --- __str__ -------------------------------------------------------------------------------


def test_str_of_every_model():
    user = UserFactory()
    tech = CategoryFactory(name="Tech", slug="tech")
    ai = CategoryFactory(name="AI", slug="ai", parent=tech)
    provider = ProviderFactory(name="Stratechery")
    item = ItemFactory(provider=provider, title="Aggregation theory")
    sub = SubscriptionFactory(user=user, provider=provider)
    saved = SavedItemFactory(user=user, item=item)
    progress = ReadingProgressFactory(user=user, item=item, progress=0.25)

    assert str(tech) == "Tech"
    assert str(ai) == "Tech / AI"
    assert str(provider) == "Stratechery"
    assert str(item) == "Aggregation theory"
    assert str(sub) == f"{user.pk} → {provider.pk} (active)"
    assert str(saved) == f"{user.pk} saved {item.pk}"
    assert str(progress) == f"{user.pk} read {item.pk}: 25%"


# --- Services: reading state ----------------------------------------------------------------


def test_completed_at_is_set_once_when_progress_reaches_the_end_and_kept_afterwards():
    user = UserFactory()
    item = ItemFactory()

    row = reading.progress_update(user_id=user.pk, item_id=item.pk, progress=0.5, position=10)
    assert row.completed_at is None

    row = reading.progress_update(user_id=user.pk, item_id=item.pk, progress=1.0, position=99)
    completed_at = row.completed_at
    assert completed_at is not None

    row = reading.progress_update(user_id=user.pk, item_id=item.pk, progress=1.0, position=99)
    assert row.completed_at == completed_at

    row = reading.progress_update(user_id=user.pk, item_id=item.pk, progress=0.2, position=5)
    row.refresh_from_db()
    assert (row.progress, row.completed_at) == (0.2, completed_at)
    assert ReadingProgress.objects.filter(user=user).count() == 1


def test_first_progress_at_the_end_completes_immediately():
    user = UserFactory()
    row = reading.progress_update(
        user_id=user.pk, item_id=ItemFactory().pk, progress=1.0, position=0
    )
    assert row.completed_at is not None


@pytest.mark.parametrize("progress", [-0.1, 1.1, float("nan"), float("inf")])
def test_progress_update_rejects_values_outside_0_1(progress):
    user = UserFactory()
    with pytest.raises(InvalidInput) as excinfo:
        reading.progress_update(
            user_id=user.pk, item_id=ItemFactory().pk, progress=progress, position=0
        )
    assert "progress" in excinfo.value.details
    assert not ReadingProgress.objects.exists()


def test_progress_on_an_unavailable_item_is_not_found():
    item = ItemFactory(status=Item.Status.UNAVAILABLE)
    with pytest.raises(NotFound):
        reading.progress_update(user_id=UserFactory().pk, item_id=item.pk, progress=0.5, position=0)


def test_resubscribing_reactivates_a_cancelled_subscription():
    sub = SubscriptionFactory()
    reading.subscription_cancel(user_id=sub.user_id, subscription_id=sub.pk)

    again, changed = reading.subscription_create(
        user_id=sub.user_id, provider_slug=sub.provider.slug
    )

    assert (again.pk, again.status, changed) == (sub.pk, Subscription.Status.ACTIVE, True)
    assert Subscription.objects.count() == 1


def test_subscribing_while_active_changes_nothing():
    sub = SubscriptionFactory()
    again, changed = reading.subscription_create(
        user_id=sub.user_id, provider_slug=sub.provider.slug
    )
    assert (again.pk, changed) == (sub.pk, False)


def test_unsubscribing_keeps_the_row_as_cancelled():
    sub = SubscriptionFactory()
    before = sub.updated_at
    reading.subscription_cancel(user_id=sub.user_id, subscription_id=sub.pk)
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.CANCELLED
    assert sub.updated_at > before


def test_cancelling_someone_elses_subscription_is_not_found():
    sub = SubscriptionFactory()
    with pytest.raises(NotFound):
        reading.subscription_cancel(user_id=UserFactory().pk, subscription_id=sub.pk)
    sub.refresh_from_db()
    assert sub.status == Subscription.Status.ACTIVE


def test_saving_twice_is_idempotent():
    user = UserFactory()
    item = ItemFactory()
    first, created_first = reading.item_save(user_id=user.pk, item_id=item.pk)
    second, created_second = reading.item_save(user_id=user.pk, item_id=item.pk)
    assert (created_first, created_second) == (True, False)
    assert first.pk == second.pk
    assert SavedItem.objects.count() == 1


def test_subscribing_to_an_unknown_provider_names_the_field():
    with pytest.raises(InvalidInput) as excinfo:
        reading.subscription_create(user_id=UserFactory().pk, provider_slug="nope")
    assert "provider" in excinfo.value.details


def test_item_published_at_orders_newest_first():
    provider = ProviderFactory()
    now = timezone.now()
    old = ItemFactory(provider=provider, published_at=now - timedelta(days=2))
    new = ItemFactory(provider=provider, published_at=now)
    assert list(Item.objects.filter(provider=provider)) == [new, old]
