"""Reading sessions over the API: ``session_id`` on interactions, and ``up_next`` on the home."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from experience_app.services.feed import build_feed
from experience_app.treatments import Treatment
from features_app.models import UserEvent
from tests.experience.utils import (
    HOME,
    assert_error,
    ids,
    ingest,
    interaction,
    make_item,
    post_interactions,
    sections,
)
from tests.factories import CategoryFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    """Readers who opened ``start`` went on to ``next_a`` or ``next_b``; ``other`` was read
    only in an unrelated session."""
    topic = CategoryFactory()
    start, next_a, next_b, other, unrelated = (
        make_item(hours_ago=3 + i, categories=[topic]) for i in range(5)
    )
    for reader, then in ((UserFactory(), next_a), (UserFactory(), next_b)):
        ingest(reader, start, "click", hours_ago=1.2)
        ingest(reader, then, "read", hours_ago=1.1)
    loner = UserFactory()
    ingest(loner, unrelated, "click", hours_ago=1.2)
    ingest(loner, other, "click", hours_ago=1.1)
    return {"start": start, "next": {next_a.id, next_b.id}, "other": other}


@pytest.mark.parametrize(
    "session_id",
    ["", "with space", "semi;colon", "x" * 65, "new\n", 12, None, ["a"], "é"],
)
def test_a_malformed_session_id_is_a_400(auth_client, world, session_id):
    response = post_interactions(
        auth_client, interaction(world["start"], "click", session_id=session_id)
    )

    error = assert_error(response, 400)
    assert "session_id" in str(error["details"])
    assert not UserEvent.objects.filter(context__has_key="session").exists()  # nothing stored


def test_the_session_id_is_kept_with_the_event(auth_client, world, user):
    sid = "Tab_7-" + "x" * 58  # 64 characters

    response = post_interactions(auth_client, interaction(world["start"], "click", session_id=sid))

    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert UserEvent.objects.get(user_id=user.id).context["session"] == sid


def test_up_next_appears_on_the_very_next_home_after_a_click(auth_client, world):
    before = sections(auth_client.get(HOME).json())
    assert "up_next" not in before

    post_interactions(auth_client, interaction(world["start"], "click"))
    body = auth_client.get(HOME).json()

    assert body["cached"] is False
    up_next = sections(body)["up_next"]
    assert set(ids(up_next)) == world["next"]
    assert world["start"].title in up_next["reason"]
    assert up_next["title"] == "Up next"
    scores = [e["score"] for e in up_next["items"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0
    assert all(e["explanation"]["session"] == e["score"] for e in up_next["items"])
    assert body["sections"][0]["key"] == "up_next"  # nothing to continue reading here


def test_client_session_ids_drive_up_next(auth_client, world):
    post_interactions(auth_client, interaction(world["start"], "click", session_id="s1"))

    up_next = sections(auth_client.get(HOME).json())["up_next"]

    assert set(ids(up_next)) == world["next"]


def test_an_impression_alone_makes_no_session(auth_client, world):
    post_interactions(auth_client, interaction(world["start"], "impression"))

    assert "up_next" not in sections(auth_client.get(HOME).json())


def test_a_session_over_by_the_gap_shows_no_up_next(auth_client, world):
    long_ago = (timezone.now() - timedelta(minutes=31)).isoformat()
    post_interactions(auth_client, interaction(world["start"], "click", occurred_at=long_ago))

    assert "up_next" not in sections(auth_client.get(HOME).json())


def test_an_experiment_can_switch_the_session_source_off(auth_client, world, user):
    post_interactions(auth_client, interaction(world["start"], "click"))
    now = timezone.now()

    on = build_feed(user.id, now=now)
    off = build_feed(user.id, now=now, treatment=Treatment(sources_off=frozenset({"session"})))

    assert on.section("up_next") is not None
    assert off.section("up_next") is None
    assert all("session" not in e.signals for s in off.sections for e in s.entries)


def test_with_redis_stopped_the_home_is_served_without_up_next(
    auth_client, user, redis_state_server
):
    topic = CategoryFactory()
    start, then = make_item(hours_ago=3, categories=[topic]), make_item(hours_ago=4)
    reader = UserFactory()
    ingest(reader, start, "click", hours_ago=0.2)
    ingest(reader, then, "click", hours_ago=0.1)
    post_interactions(auth_client, interaction(start, "click", session_id="s1"))
    assert "up_next" in sections(auth_client.get(HOME).json())

    redis_state_server.stop()
    post_interactions(auth_client, interaction(then, "click", session_id="s1"))
    response = auth_client.get(HOME)

    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True
    assert "up_next" not in sections(body)


def test_a_reset_of_recommendations_ends_the_session_in_progress(auth_client, world):
    post_interactions(auth_client, interaction(world["start"], "click"))
    assert "up_next" in sections(auth_client.get(HOME).json())

    assert auth_client.post("/api/v1/me/profile/reset/").status_code in (200, 204)

    assert "up_next" not in sections(auth_client.get(HOME).json())


def test_operators_can_switch_the_session_source_off(auth_client, world, settings):
    post_interactions(auth_client, interaction(world["start"], "click"))
    settings.EXPERIENCE_PERSONALIZATION_OFF = frozenset({"session", "time_place", "rules"})

    body = auth_client.get(HOME).json()

    assert "up_next" not in sections(body)
    explanations = [e["explanation"] for s in body["sections"] for e in s["items"]]
    assert explanations and not any("session" in x or "hour_match" in x for x in explanations)
