"""A reader's own changes (subscriptions, saves, reading progress) refresh the home feed at
once: the cached feed is forgotten when the change commits, not 5 minutes later."""

from __future__ import annotations

import pytest

from reading_app import public as reading
from reading_app.services import reading as reading_services
from tests.experience.utils import HOME, ids, ingest, make_item, sections
from tests.factories import CategoryFactory, ProviderFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(user):
    food = CategoryFactory(name="Food")
    newsletter, other = ProviderFactory(), ProviderFactory()
    theirs = [make_item(hours_ago=1 + i, provider=newsletter) for i in range(3)]
    others = [make_item(hours_ago=2 + i, categories=[food], provider=other) for i in range(8)]
    crowd = UserFactory()
    for item in others[:3]:
        ingest(crowd, item, "click", hours_ago=1)
    return {"newsletter": newsletter, "theirs": theirs, "others": others}


def _cached(client) -> dict:
    client.get(HOME)
    body = client.get(HOME).json()
    assert body["cached"] is True
    return body


def test_subscribing_shows_fresh_at_once_and_cancelling_removes_it(auth_client, world):
    _cached(auth_client)

    response = auth_client.post(
        "/api/v1/subscriptions/", {"provider": world["newsletter"].slug}, format="json"
    )
    assert response.status_code == 201
    body = auth_client.get(HOME).json()

    assert body["cached"] is False
    assert set(ids(sections(body)["fresh"])) == {i.id for i in world["theirs"]}

    _cached(auth_client)
    assert auth_client.delete(f"/api/v1/subscriptions/{response.json()['id']}/").status_code in (
        200,
        204,
    )
    after = auth_client.get(HOME).json()
    assert after["cached"] is False and "fresh" not in sections(after)


def test_starting_to_read_shows_in_continue_reading_at_once(auth_client, world):
    _cached(auth_client)
    item = world["others"][5]

    answer = auth_client.put(
        f"/api/v1/reading/progress/{item.id}/", {"progress": 0.3, "position": 120}, format="json"
    )
    assert answer.status_code in (200, 201)
    body = auth_client.get(HOME).json()

    assert body["cached"] is False
    assert ids(sections(body)["continue_reading"]) == [item.id]


def test_saving_and_unsaving_refresh_the_feed(auth_client, world):
    _cached(auth_client)
    item = world["others"][0]
    assert auth_client.put(f"/api/v1/reading/saves/{item.id}/").status_code in (200, 201)
    assert auth_client.get(HOME).json()["cached"] is False
    _cached(auth_client)
    assert auth_client.delete(f"/api/v1/reading/saves/{item.id}/").status_code in (200, 204)
    assert auth_client.get(HOME).json()["cached"] is False


def test_a_change_rolled_back_tells_nobody(user):
    told = []

    def listener(user_id, what):
        told.append((user_id, what))

    reading.subscribe_reader_changes(listener)
    try:
        with pytest.raises(Exception, match="No such provider"):
            reading_services.subscription_create(user_id=user.id, provider_slug="nope")
    finally:
        reading.unsubscribe_reader_changes(listener)
    assert told == []


def test_another_readers_feed_stays_cached(auth_client, other_client, world):
    _cached(other_client)
    auth_client.post(
        "/api/v1/subscriptions/", {"provider": world["newsletter"].slug}, format="json"
    )
    assert other_client.get(HOME).json()["cached"] is True
