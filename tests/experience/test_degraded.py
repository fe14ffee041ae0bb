"""With Redis stopped the home experience answers from PostgreSQL: degraded, never a 500.

Each test runs against a private redis-server (``redis_state_server``) that it stops and
starts; the shared test Redis is never touched.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from experience_app.models import ExperienceInteraction, ServedFeed
from features_app.models import UserEvent
from inbo import breakers, keys
from inbo import redis as inbo_redis
from tests.experience.utils import (
    HOME,
    all_ids,
    entry,
    ids,
    ingest,
    interaction,
    make_item,
    post_interactions,
    section_url,
    sections,
)
from tests.factories import (
    CategoryFactory,
    ProviderFactory,
    ReadingProgressFactory,
    SubscriptionFactory,
    UserFactory,
)
from tests.redis_server import SocketSends

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(user, redis_state_server):
    """A small catalog and history, counted in the private Redis while it is up."""
    tech, food = CategoryFactory(), CategoryFactory()
    followed = ProviderFactory()
    SubscriptionFactory(user=user, provider=followed)
    tech_items = [make_item(hours_ago=2 + i, categories=[tech]) for i in range(14)]
    food_items = [make_item(hours_ago=2 + i, categories=[food]) for i in range(8)]
    fresh_items = [make_item(hours_ago=1 + i, provider=followed) for i in range(3)]
    reading = make_item(hours_ago=30)
    ReadingProgressFactory(user=user, item=reading)
    crowd = UserFactory()
    for item in food_items[:3]:
        ingest(crowd, item, "click", hours_ago=1)
    return {
        "server": redis_state_server,
        "tech_items": tech_items,
        "food_items": food_items,
        "fresh_items": fresh_items,
        "reading": reading,
    }


def test_home_answers_from_postgresql_when_redis_is_stopped(auth_client, world, user):
    assert post_interactions(auth_client, interaction(world["tech_items"][0], "click")).json()[
        "counted"
    ]
    live = auth_client.get(HOME).json()
    assert live["degraded"] is False
    world["server"].stop()

    response = auth_client.get(HOME)

    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True
    assert body["cached"] is False
    by_key = sections(body)
    assert ids(by_key["continue_reading"]) == [world["reading"].id]
    assert set(ids(by_key["fresh"])) == {i.id for i in world["fresh_items"]}
    assert set(ids(by_key["trending"])) == {i.id for i in world["food_items"][:3]}
    # Affinity is learned from the event log: the clicked category leads for_you.
    tech = {i.id for i in world["tech_items"]}
    top = by_key["for_you"]["items"][0]
    assert top["item"]["id"] in tech and top["explanation"]["affinity"] > 0
    assert "because_you_read" in by_key
    served = all_ids(body)
    assert len(served) == len(set(served))
    # The served log cannot wait for Redis: it is written to PostgreSQL at once.
    row = ServedFeed.objects.get(request_id=body["request_id"])
    assert row.degraded is True
    assert [i["item_id"] for i in row.items] == served


def test_interactions_are_stored_while_redis_is_stopped(auth_client, world, user):
    world["server"].stop()
    batch = [
        interaction(world["tech_items"][1], "impression"),
        interaction(world["tech_items"][1], "click"),
        interaction(world["food_items"][4], "dismiss"),
    ]

    response = post_interactions(auth_client, *batch)

    assert response.status_code == 200
    assert response.json() == {
        "accepted": 3,
        "duplicates": 0,
        "rejected": [],
        "counted": False,
    }
    sent = {b["event_id"] for b in batch}
    assert {str(e) for e in UserEvent.objects.values_list("event_id", flat=True)} >= sent
    stored = ExperienceInteraction.objects.filter(user=user).values_list("event_id", flat=True)
    assert {str(e) for e in stored} == sent
    # A retry while Redis is still away stores nothing twice.
    retried = post_interactions(auth_client, *batch).json()
    assert (retried["accepted"], retried["duplicates"]) == (0, 3)


def test_feedback_given_without_redis_shows_in_the_degraded_feed(auth_client, world):
    world["server"].stop()
    dismissed = world["food_items"][0]
    tired = world["food_items"][1]
    earlier = (timezone.now() - timedelta(minutes=1)).isoformat()
    post_interactions(
        auth_client,
        interaction(dismissed, "dismiss"),
        *[interaction(tired, "impression", occurred_at=earlier) for _ in range(3)],
    )

    body = auth_client.get(HOME).json()

    assert body["degraded"] is True
    assert dismissed.id not in all_ids(body)
    assert tired.id not in all_ids(body)


def test_the_service_recovers_when_redis_comes_back(auth_client, world, user):
    auth_client.get(HOME)  # cached in the server that is about to go
    world["server"].stop()
    dismissed = world["food_items"][0]
    assert auth_client.get(HOME).json()["degraded"] is True
    post_interactions(auth_client, interaction(dismissed, "dismiss"))

    world["server"].start()
    # The outage opened the state breaker; it lets a trial call through after its reset time
    # (REDIS_BREAKER_RESET_SECONDS): that time is up now.
    breakers.allow_trials()

    body = auth_client.get(HOME).json()
    assert body["degraded"] is False
    assert body["cached"] is False
    assert dismissed.id not in all_ids(body)
    assert auth_client.get(HOME).json()["cached"] is True
    recounted = post_interactions(auth_client, interaction(world["tech_items"][2], "click"))
    assert recounted.json()["counted"] is True
    client = inbo_redis.state()
    assert client.hget(keys.item_counts(world["tech_items"][2].id), "click") == "1"


def test_section_pages_answer_while_redis_is_stopped(auth_client, world, settings):
    settings.EXPERIENCE_SECTION_PAGE_SIZE = 3
    body = auth_client.get(HOME).json()
    cursor = sections(body)["for_you"]["next_cursor"]
    world["server"].stop()

    response = auth_client.get(section_url("for_you"), {"cursor": cursor})

    assert response.status_code == 200
    page = response.json()
    assert page["degraded"] is True
    assert page["items"] and page["items"][0]["position"] == 3
    assert ServedFeed.objects.filter(request_id=page["request_id"], degraded=True).exists()


def test_a_crashed_redis_is_no_500_either(auth_client, world):
    world["server"].kill()
    assert auth_client.get(HOME).status_code == 200
    response = post_interactions(auth_client, interaction(world["tech_items"][0], "save"))
    assert response.status_code == 200
    assert response.json()["counted"] is False
    page = auth_client.get(HOME).json()
    assert page["degraded"] is True
    assert page["cold_start"] is False  # the save, learned from the log
    assert entry(page, world["tech_items"][0].id) is None  # the anchor of because_you_read


def test_with_redis_hung_the_process_waits_at_most_the_breaker_threshold_in_all(
    auth_client, world, settings, monkeypatch
):
    """A SIGSTOP'd Redis answers nothing: without the breaker every Redis call waited its
    socket timeout (home took 9.2 s). Now the process waits at most REDIS_BREAKER_FAILURES
    timeouts in all, whatever the number of requests, and every answer is degraded."""
    settings.REDIS_SOCKET_TIMEOUT = 0.2
    settings.REDIS_BREAKER_FAILURES = 2
    settings.REDIS_BREAKER_RESET_SECONDS = 60.0
    inbo_redis.reset_clients()
    assert auth_client.get(HOME).json()["degraded"] is False
    sends = SocketSends(monkeypatch, world["server"].port)
    world["server"].pause()
    try:
        homes = [auth_client.get(HOME) for _ in range(4)]
        posted = [
            post_interactions(auth_client, interaction(world["tech_items"][i], "click"))
            for i in range(3)
        ]
    finally:
        world["server"].resume()

    assert all(r.status_code == 200 and r.json()["degraded"] is True for r in homes)
    assert all(r.status_code == 200 and r.json()["accepted"] == 1 for r in posted)
    assert 1 <= sends.count <= settings.REDIS_BREAKER_FAILURES
    assert inbo_redis.state_breaker().current_state == breakers.OPEN
