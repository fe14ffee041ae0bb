"""The bulk reading-state facade functions used by the loaders."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inbo.errors import InvalidInput
from reading_app.models import ReadingProgress, SavedItem, Subscription
from reading_app.public import (
    ReadingProgressIn,
    SavedItemIn,
    SubscriptionIn,
    items_published_at,
    reading_progress_bulk_create,
    saved_items_bulk_create,
    subscriptions_bulk_create,
)
from tests.factories import ItemFactory, ProviderFactory, SubscriptionFactory, UserFactory

pytestmark = pytest.mark.django_db

THEN = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)


def test_new_rows_are_backdated_and_existing_rows_left_alone():
    user = UserFactory()
    kept = SubscriptionFactory(user=user, status=Subscription.Status.PAUSED)
    other = ProviderFactory()
    result = subscriptions_bulk_create(
        [
            SubscriptionIn(user.id, kept.provider_id, "active", THEN),
            SubscriptionIn(user.id, other.id, "cancelled", THEN),
            SubscriptionIn(user.id, other.id, "active", None),  # duplicate: first wins
        ]
    )
    assert (result.created, result.existing) == (1, 1)
    kept.refresh_from_db()
    assert kept.status == Subscription.Status.PAUSED
    new = Subscription.objects.get(user=user, provider=other)
    assert (new.status, new.created_at, new.updated_at) == ("cancelled", THEN, THEN)


def test_saved_items_and_progress_are_created_once():
    user, item = UserFactory(), ItemFactory(external_id="test:item:1")
    assert saved_items_bulk_create([SavedItemIn(user.id, item.id, THEN)]).created == 1
    assert saved_items_bulk_create([SavedItemIn(user.id, item.id, THEN)]).existing == 1
    assert SavedItem.objects.get().created_at == THEN
    row = ReadingProgressIn(user.id, item.id, 1.0, 900, THEN, THEN, THEN)
    assert reading_progress_bulk_create([row]).created == 1
    assert reading_progress_bulk_create([row]).created == 0
    progress = ReadingProgress.objects.get()
    assert (progress.started_at, progress.completed_at, progress.progress) == (THEN, THEN, 1.0)
    assert items_published_at(["test:item:1", "missing"]) == {"test:item:1": item.published_at}


def test_invalid_rows_are_rejected():
    user, item = UserFactory(), ItemFactory()
    with pytest.raises(InvalidInput):
        subscriptions_bulk_create([SubscriptionIn(user.id, item.provider_id, "deleted")])
    with pytest.raises(InvalidInput):
        reading_progress_bulk_create([ReadingProgressIn(user.id, item.id, 1.5)])
