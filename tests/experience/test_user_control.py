"""User control (issue 13, point 8): a reader sees what INBO has learned, in words, edits
their settings, removes a learned interest, mutes a provider or topic and resets their
recommendations; each change shows on the very next home, and a removal stays removed
through the feature store's recount (reconcile) and its PostgreSQL fallback."""

from __future__ import annotations

import pytest
from django.utils import timezone

from experience_app.models import ReaderForget, ReaderMute
from experience_app.services import reader_control
from features_app import public as features
from features_app import reconcile
from features_app.segments import compute_segments
from inbo import keys
from inbo import redis as inbo_redis
from reading_app import caches as catalog_caches
from tests.experience.utils import (
    HOME,
    INTERESTS,
    all_ids,
    ids,
    interaction,
    make_item,
    post_interactions,
    sections,
)
from tests.factories import CategoryFactory, ProviderFactory

pytestmark = pytest.mark.django_db

PROFILE = "/api/v1/me/profile/"
MUTES = "/api/v1/me/mutes/"
RESET = "/api/v1/me/profile/reset/"


@pytest.fixture
def world():
    science = CategoryFactory(name="Science", slug="science")
    physics = CategoryFactory(name="Physics", slug="physics", parent=science)
    food = CategoryFactory(name="Food", slug="food")
    lab, quarks, kitchen = (
        ProviderFactory(name="Lab Notes"),
        ProviderFactory(name="Quarks Daily"),
        ProviderFactory(name="Kitchen Letters"),
    )
    return {
        "science": science,
        "physics": physics,
        "food": food,
        "lab": lab,
        "quarks": quarks,
        "kitchen": kitchen,
        "lab_items": [
            make_item(hours_ago=1 + i, provider=lab, categories=[science]) for i in range(6)
        ],
        "physics_items": [
            make_item(hours_ago=2 + i, provider=quarks, categories=[physics]) for i in range(4)
        ],
        "food_items": [
            make_item(hours_ago=3 + i, provider=kitchen, categories=[food]) for i in range(6)
        ],
    }


def _read(client, items, kind="click"):
    response = post_interactions(client, *(interaction(item, kind) for item in items))
    assert response.status_code == 200, response.content


def _learned(client, what="categories") -> dict[str, dict]:
    body = client.get(PROFILE).json()
    return {row["name"]: row for row in body["learned"][what]}


def _affinity(user) -> dict[str, float]:
    return inbo_redis.state().hgetall(keys.user_affinity(user.id))


def _drift(report) -> dict[str, float]:
    return report.family_drift()


# --- the profile in words ----------------------------------------------------------------


def test_the_profile_says_what_was_learned_in_words(auth_client, world):
    _read(auth_client, world["lab_items"][:3], "read")
    _read(auth_client, world["food_items"][:1])
    auth_client.put(INTERESTS, {"categories": ["food"]}, format="json")
    auth_client.post("/api/v1/subscriptions/", {"provider": world["lab"].slug}, format="json")

    body = auth_client.get(PROFILE).json()

    science = body["learned"]["categories"][0]
    assert science["name"] == "Science" and science["strength"] == "strong"
    assert science["summary"] == "You read a lot about Science."
    assert body["summary"][0] == "You read a lot about Science."
    food = next(r for r in body["learned"]["categories"] if r["name"] == "Food")
    assert food["strength"] == "light" and food["summary"] == "You sometimes read about Food."
    assert body["learned"]["providers"][0]["summary"] == "You read a lot from Lab Notes."
    assert [t["slug"] for t in body["picked_topics"]] == ["food"]
    assert body["subscriptions"] == 1
    assert body["mutes"] == []
    assert body["settings"]["timezone"] == "UTC"
    assert body["settings"]["recommendations_reset_at"] is None
    assert body["learned"]["degraded"] is False


def test_the_segment_is_said_in_words_and_a_reset_drops_the_stale_cluster(auth_client, world):
    assert auth_client.get(PROFILE).json()["segment"] is None  # never segmented
    _read(auth_client, world["lab_items"][:3], "read")
    compute_segments(now=timezone.now())

    segment = auth_client.get(PROFILE).json()["segment"]
    assert segment["engagement"] == "new"
    assert segment["engagement_summary"].startswith("You are new here")
    assert "Science" in segment["interest_cluster"]
    assert segment["interest_cluster_summary"].startswith("What you read is closest to readers")

    auth_client.post(RESET)
    after = auth_client.get(PROFILE).json()["segment"]
    assert after["engagement"] == "new" and after["interest_cluster"] is None


def test_the_next_segmentation_honours_a_removed_category_and_a_reset(auth_client, world):
    _read(auth_client, world["lab_items"][:3], "read")
    _read(auth_client, world["food_items"][:1])
    compute_segments(now=timezone.now())
    assert auth_client.get(PROFILE).json()["segment"]["interest_cluster"] == "Science"

    auth_client.delete(f"/api/v1/me/profile/categories/{world['science'].id}/")
    compute_segments(now=timezone.now())  # the hourly run recounts from the whole log
    assert auth_client.get(PROFILE).json()["segment"]["interest_cluster"] == "Food"

    auth_client.post(RESET)
    compute_segments(now=timezone.now())
    after = auth_client.get(PROFILE).json()["segment"]
    assert after["engagement"] == "new" and after["interest_cluster"] is None


def test_a_new_reader_is_told_nothing_was_learned_yet(auth_client, world):
    body = auth_client.get(PROFILE).json()
    assert body["learned"]["categories"] == [] and body["learned"]["providers"] == []
    assert "not learned your taste yet" in body["summary"][0]


def test_what_a_reader_skips_is_said_too(auth_client, world):
    _read(auth_client, world["lab_items"][:2], "read")
    _read(auth_client, world["food_items"][:2], "hide")
    skipped = auth_client.get(PROFILE).json()["learned"]["skipped_categories"]
    assert [(r["name"], r["strength"]) for r in skipped] == [("Food", "skipped")]
    assert skipped[0]["summary"] == "You tend to skip Food."


def test_anonymous_callers_get_401(api_client):
    for method, url in (
        ("get", PROFILE),
        ("patch", PROFILE),
        ("get", MUTES),
        ("post", MUTES),
        ("post", RESET),
        ("delete", "/api/v1/me/profile/categories/1/"),
    ):
        response = getattr(api_client, method)(url, {}, format="json")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"


# --- settings ------------------------------------------------------------------------------


def test_settings_are_edited_normalised_and_shown(auth_client, world):
    response = auth_client.patch(
        PROFILE,
        {"timezone": "Europe/Paris", "country": "fr", "region": "idf", "language": "FR"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json() == {
        "timezone": "Europe/Paris",
        "country": "FR",
        "region": "IDF",
        "language": "fr",
        "recommendations_reset_at": None,
    }
    # A partial change keeps the rest; an empty string clears.
    auth_client.patch(PROFILE, {"region": ""}, format="json")
    stored = auth_client.get(PROFILE).json()["settings"]
    assert (stored["timezone"], stored["country"], stored["region"]) == ("Europe/Paris", "FR", "")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": "europe/paris"}, "timezone"),
        ({"timezone": 3600}, "timezone"),
        ({"timezone": "x" * 65}, "timezone"),
        ({"country": "XX"}, "country"),
        ({"country": "USA"}, "country"),
        ({"country": None}, "country"),
        ({"country": "US", "region": "New York"}, "region"),
        ({"country": "US", "region": "N" * 17}, "region"),
        ({"region": "NY"}, "region"),  # no country
        ({"language": "xx"}, "language"),
        ({"language": "eng"}, "language"),
        ({"language": ["en"]}, "language"),
        ({"theme": "dark"}, "non_field_errors"),
        ({"timezone": "UTC", "thmezone": "UTC"}, "non_field_errors"),
        ({}, "non_field_errors"),
    ],
)
def test_bad_settings_are_a_400_naming_the_field(auth_client, body, field):
    response = auth_client.patch(PROFILE, body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and field in error["details"]


def test_a_body_that_is_not_an_object_is_a_400(auth_client):
    response = auth_client.patch(PROFILE, ["timezone", "UTC"], format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


# --- removing a learned interest -------------------------------------------------------------


def test_a_removed_category_stays_removed_through_reconcile_and_the_fallback(
    auth_client, user, world
):
    science = world["science"].id
    _read(auth_client, world["lab_items"][:3], "read")
    _read(auth_client, world["food_items"][:1])
    assert f"c{science}" in _affinity(user)

    response = auth_client.delete(f"/api/v1/me/profile/categories/{science}/")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Science"

    assert "Science" not in _learned(auth_client)
    assert "Lab Notes" in _learned(auth_client, "providers")  # only the category is forgotten
    assert f"c{science}" not in _affinity(user)

    # The recount from the event log honours the removal: nothing to repair.
    report = reconcile.reconcile()
    assert "affinity" not in _drift(report)
    assert f"c{science}" not in _affinity(user)
    assert "Science" not in _learned(auth_client)
    # ...and without the record, the same recount would bring it back.
    features.unsubscribe_forgetting(reader_control.forgetting_source)
    try:
        assert _drift(reconcile.reconcile(dry_run=True)).get("affinity", 0) > 0
    finally:
        features.subscribe_forgetting(reader_control.forgetting_source)

    fallback = features.user_profile_from_log(user.id, now=timezone.now())
    assert science not in fallback.category_affinity
    assert fallback.category_affinity[world["food"].id] > 0
    assert fallback.provider_affinity[world["lab"].id] > 0


def test_reading_it_again_teaches_it_again(auth_client, user, world):
    science = world["science"].id
    _read(auth_client, world["lab_items"][:3], "read")
    auth_client.delete(f"/api/v1/me/profile/categories/{science}/")
    _read(auth_client, world["lab_items"][3:4])

    assert _learned(auth_client)["Science"]["score"] == 1.0  # one click since
    assert "affinity" not in _drift(reconcile.reconcile())
    assert _learned(auth_client)["Science"]["score"] == 1.0
    fallback = features.user_profile_from_log(user.id, now=timezone.now())
    assert fallback.category_affinity[science] == 1.0


def test_a_removed_provider_stays_removed(auth_client, user, world):
    lab = world["lab"].id
    _read(auth_client, world["lab_items"][:3], "read")
    assert auth_client.delete(f"/api/v1/me/profile/providers/{lab}/").status_code == 200

    assert "Lab Notes" not in _learned(auth_client, "providers")
    assert "Science" in _learned(auth_client)
    assert "affinity" not in _drift(reconcile.reconcile())
    assert "Lab Notes" not in _learned(auth_client, "providers")
    assert lab not in features.user_profile_from_log(user.id, now=timezone.now()).provider_affinity


def test_removing_takes_effect_on_the_next_home(auth_client, world):
    _read(auth_client, world["lab_items"][:3], "read")
    auth_client.get(HOME)
    assert auth_client.get(HOME).json()["cached"] is True
    auth_client.delete(f"/api/v1/me/profile/categories/{world['science'].id}/")
    assert auth_client.get(HOME).json()["cached"] is False


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/me/profile/categories/999999/",
        "/api/v1/me/profile/providers/999999/",
        f"/api/v1/me/profile/categories/{2**63}/",
    ],
)
def test_removing_something_unknown_is_a_404(auth_client, world, url):
    response = auth_client.delete(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert not ReaderForget.objects.exists()


# --- mutes ---------------------------------------------------------------------------------


def test_a_muted_provider_leaves_every_section_on_the_next_home(auth_client, world):
    lab_ids = {i.id for i in world["lab_items"]}
    started = world["lab_items"][0]
    auth_client.put(
        f"/api/v1/reading/progress/{started.id}/", {"progress": 0.3, "position": 90}, format="json"
    )
    _read(auth_client, world["lab_items"][1:2])
    before = auth_client.get(HOME).json()
    assert started.id in ids(sections(before)["continue_reading"])
    assert lab_ids & set(all_ids(before))
    assert auth_client.get(HOME).json()["cached"] is True

    response = auth_client.post(MUTES, {"kind": "provider", "id": world["lab"].id}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "Lab Notes"

    after = auth_client.get(HOME).json()
    assert after["cached"] is False
    assert not lab_ids & set(all_ids(after))
    assert "continue_reading" not in sections(after)

    assert auth_client.delete(f"/api/v1/me/mutes/provider/{world['lab'].id}/").status_code == 204
    again = auth_client.get(HOME).json()
    assert started.id in ids(sections(again)["continue_reading"])


def test_a_muted_topic_takes_its_subtopics_with_it(auth_client, world):
    hidden = {i.id for i in world["lab_items"] + world["physics_items"]}
    _read(auth_client, world["food_items"][:1])
    assert hidden & set(all_ids(auth_client.get(HOME).json()))

    response = auth_client.post(
        MUTES, {"kind": "category", "id": world["science"].id}, format="json"
    )
    assert response.status_code == 201

    body = auth_client.get(HOME).json()
    assert not hidden & set(all_ids(body))
    assert {i.id for i in world["food_items"][1:]} & set(all_ids(body))
    listed = auth_client.get(MUTES).json()
    assert [(m["kind"], m["name"]) for m in listed["mutes"]] == [("category", "Science")]
    assert listed["limit"] == reader_control.MAX_MUTES
    assert auth_client.get(PROFILE).json()["mutes"][0]["name"] == "Science"


def test_a_muted_picked_topic_is_not_shown_nor_named(auth_client, world):
    auth_client.put(INTERESTS, {"categories": ["science", "food"]}, format="json")
    auth_client.post(MUTES, {"kind": "category", "id": world["science"].id}, format="json")
    body = auth_client.get(HOME).json()
    hidden = {i.id for i in world["lab_items"] + world["physics_items"]}
    assert not hidden & set(all_ids(body))
    assert all("Science" not in s["reason"] for s in body["sections"])


def test_muting_twice_is_idempotent(auth_client, world):
    body = {"kind": "provider", "id": world["lab"].id}
    assert auth_client.post(MUTES, body, format="json").status_code == 201
    assert auth_client.post(MUTES, body, format="json").status_code == 200
    assert ReaderMute.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"kind": "newsletter", "id": 1}, 400, "kind"),
        ({"kind": "provider", "id": "7"}, 400, "id"),
        ({"kind": "provider", "id": 7.0}, 400, "id"),
        ({"kind": "provider", "id": True}, 400, "id"),
        ({"kind": "provider", "id": 0}, 400, "id"),
        ({"kind": "provider", "id": 2**63}, 400, "id"),
        ({"kind": "provider"}, 400, "id"),
        ({"kind": "provider", "id": 999999}, 404, None),
        ({"kind": "category", "id": 999999}, 404, None),
    ],
)
def test_bad_mutes_are_refused_in_the_error_shape(auth_client, world, body, status, field):
    response = auth_client.post(MUTES, body, format="json")
    assert response.status_code == status, response.content
    error = response.json()["error"]
    if field:
        assert field in error["details"]
    assert not ReaderMute.objects.exists()


def test_mutes_are_bounded(auth_client, world, monkeypatch):
    monkeypatch.setattr(reader_control, "MAX_MUTES", 2)
    for provider in ("lab", "quarks"):
        body = {"kind": "provider", "id": world[provider].id}
        assert auth_client.post(MUTES, body, format="json").status_code == 201
    response = auth_client.post(
        MUTES, {"kind": "provider", "id": world["kitchen"].id}, format="json"
    )
    assert response.status_code == 400
    assert "id" in response.json()["error"]["details"]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/me/mutes/provider/999999/",
        "/api/v1/me/mutes/newsletter/1/",
        f"/api/v1/me/mutes/category/{2**64}/",
    ],
)
def test_unmuting_what_is_not_muted_is_a_404(auth_client, world, url):
    response = auth_client.delete(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- reset ---------------------------------------------------------------------------------


def test_reset_empties_learned_taste_and_keeps_the_readers_choices(auth_client, user, world):
    _read(auth_client, world["lab_items"][:3], "read")
    _read(auth_client, world["food_items"][:2])
    auth_client.put(INTERESTS, {"categories": ["food"]}, format="json")
    auth_client.post("/api/v1/subscriptions/", {"provider": world["lab"].slug}, format="json")
    auth_client.put(f"/api/v1/reading/saves/{world['lab_items'][4].id}/")
    auth_client.post(MUTES, {"kind": "provider", "id": world["quarks"].id}, format="json")
    auth_client.delete(f"/api/v1/me/profile/categories/{world['food'].id}/")
    state = inbo_redis.state()
    state.zadd(keys.learned_candidates("similar", user.id), {"1": 0.9})
    assert auth_client.get(HOME).json()["cold_start"] is False

    response = auth_client.post(RESET)
    assert response.status_code == 200, response.content

    body = auth_client.get(PROFILE).json()
    assert body["learned"]["categories"] == [] and body["learned"]["providers"] == []
    assert (
        body["settings"]["recommendations_reset_at"] == response.json()["recommendations_reset_at"]
    )
    assert body["subscriptions"] == 1
    assert [t["slug"] for t in body["picked_topics"]] == ["food"]
    assert [m["name"] for m in body["mutes"]] == ["Quarks Daily"]
    home = auth_client.get(HOME).json()
    assert home["cached"] is False and home["cold_start"] is True
    assert not state.exists(keys.learned_candidates("similar", user.id))
    assert not state.exists(keys.user_counts(user.id))
    # One record covers the reset and every earlier removal.
    assert list(ReaderForget.objects.values_list("kind", flat=True)) == ["all"]

    assert not {"affinity", "user", "seen"} & set(_drift(reconcile.reconcile()))
    assert auth_client.get(PROFILE).json()["learned"]["categories"] == []
    fallback = features.user_profile_from_log(user.id, now=timezone.now())
    assert fallback.category_affinity == {} and fallback.event_counts == {}

    # What is read after the reset is learned as usual.
    _read(auth_client, world["food_items"][3:4])
    assert list(_learned(auth_client)) == ["Food"]
    assert "affinity" not in _drift(reconcile.reconcile())


# --- other readers -------------------------------------------------------------------------


def test_other_readers_are_untouched(auth_client, other_client, other_user, world):
    for client in (auth_client, other_client):
        _read(client, world["lab_items"][:3], "read")
    other_client.get(HOME)

    auth_client.delete(f"/api/v1/me/profile/categories/{world['science'].id}/")
    auth_client.post(MUTES, {"kind": "provider", "id": world["lab"].id}, format="json")
    auth_client.patch(PROFILE, {"timezone": "Asia/Tokyo"}, format="json")
    auth_client.post(RESET)

    assert other_client.get(HOME).json()["cached"] is True
    profile = other_client.get(PROFILE).json()
    assert profile["learned"]["categories"][0]["name"] == "Science"
    assert profile["mutes"] == [] and profile["settings"]["timezone"] == "UTC"
    reconcile.reconcile()
    assert _learned(other_client)["Science"]["score"] > 0
    assert (
        world["science"].id
        in features.user_profile_from_log(other_user.id, now=timezone.now()).category_affinity
    )


def test_a_reader_cannot_unmute_for_another(auth_client, other_client, world):
    other_client.post(MUTES, {"kind": "provider", "id": world["lab"].id}, format="json")
    response = auth_client.delete(f"/api/v1/me/mutes/provider/{world['lab'].id}/")
    assert response.status_code == 404
    assert ReaderMute.objects.count() == 1
    assert auth_client.get(MUTES).json()["mutes"] == []


# --- cost ----------------------------------------------------------------------------------


def _queries(client, url) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_profile_costs_a_fixed_number_of_queries(
    auth_client, world, django_assert_max_num_queries
):
    """Many of each (learned category and provider, picked topic, muted provider and topic)
    cost no more than one of each (the names come from the catalog's cache, so ids the
    request already named cost nothing)."""
    _read(auth_client, world["lab_items"][:1])
    auth_client.put(INTERESTS, {"categories": ["food"]}, format="json")
    auth_client.post(MUTES, {"kind": "provider", "id": world["quarks"].id}, format="json")
    auth_client.post(MUTES, {"kind": "category", "id": world["physics"].id}, format="json")
    catalog_caches.invalidate_all()  # names and cards read cold, both times
    few = _queries(auth_client, PROFILE)
    _read(auth_client, world["food_items"] + world["physics_items"])
    auth_client.put(INTERESTS, {"categories": ["food", "science", "physics"]}, format="json")
    auth_client.post(MUTES, {"kind": "category", "id": world["food"].id}, format="json")
    auth_client.post(MUTES, {"kind": "provider", "id": world["kitchen"].id}, format="json")
    catalog_caches.invalidate_all()
    with django_assert_max_num_queries(few):
        auth_client.get(PROFILE)


def test_mutes_cost_the_home_no_query_of_their_own(auth_client, user, world):
    from experience_app.services.feed import invalidate

    def build() -> int:
        """Queries of a home that builds its feed; the least of two builds, so that a
        process cache refreshing on its clock during one of them is not counted."""
        counts = []
        for _ in range(2):
            invalidate(user.id)
            counts.append(_queries(auth_client, HOME))
        return min(counts)

    _read(auth_client, world["lab_items"][:2])
    auth_client.put(INTERESTS, {"categories": ["food"]}, format="json")
    auth_client.get(HOME)  # warm the process's caches (facets): both builds below are alike
    auth_client.patch(PROFILE, {"timezone": "UTC"}, format="json")
    without = build()
    auth_client.post(MUTES, {"kind": "provider", "id": world["kitchen"].id}, format="json")
    auth_client.post(MUTES, {"kind": "category", "id": world["physics"].id}, format="json")
    assert build() == without


def test_reading_the_profile_is_not_throttled_and_changing_it_is(auth_client, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "reader_control": "1/min"}
    assert auth_client.patch(PROFILE, {"timezone": "UTC"}, format="json").status_code == 200
    response = auth_client.patch(PROFILE, {"timezone": "UTC"}, format="json")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert all(auth_client.get(url).status_code == 200 for url in (PROFILE, PROFILE, MUTES))
