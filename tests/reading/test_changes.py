"""Catalog change notifications: what other apps (search) subscribe to."""

from __future__ import annotations

import pytest
from django.db import transaction

from reading_app import public as reading
from reading_app.models import Item
from tests.factories import ItemFactory, ProviderFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def listen():
    added = []

    def subscribe(callback):
        reading.subscribe_catalog_changes(callback)
        added.append(callback)

    yield subscribe
    for callback in added:
        reading.unsubscribe_catalog_changes(callback)


def test_listeners_hear_saves_and_deletes_with_sorted_ids(listen):
    heard = []
    listen(lambda kind, ids, op: heard.append((kind, ids, op)))
    provider = ProviderFactory()
    item = ItemFactory(provider=provider)
    item_id = item.pk
    item.delete()

    assert heard == [
        ("providers", [provider.pk], "upsert"),
        ("items", [item_id], "upsert"),
        ("items", [item_id], "delete"),
    ]


def test_a_listener_that_fails_rolls_back_the_change_with_its_transaction(listen):
    def broken(kind, ids, op):
        raise RuntimeError("outbox unavailable")

    provider = ProviderFactory()
    listen(broken)

    with pytest.raises(RuntimeError), transaction.atomic():
        ItemFactory(provider=provider)
    assert not Item.objects.exists()


def test_subscribing_twice_notifies_once(listen):
    heard = []

    def callback(kind, ids, op):
        heard.append(kind)

    listen(callback)
    listen(callback)
    ProviderFactory()

    assert heard == ["providers"]
