"""GET /api/v1/experience/home/ and its section pages."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experience_app import apps as experience_apps
from experience_app.learned import FEATURES
from experience_app.models import ExperienceInteraction
from experience_app.services.feed import SECTION_ORDER
from features_app import public as features
from features_app.contracts import EventIn, EventType
from inbo import keys
from inbo import redis as inbo_redis
from reading_app import caches as catalog_caches
from reading_app import public as reading
from reading_app.models import Item, ReadingProgress
from tests.experience.utils import (
    HOME,
    all_ids,
    assert_error,
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

pytestmark = pytest.mark.django_db


def _progress(user, item, *, progress=0.4, days_ago=0.0, completed=False):
    row = ReadingProgressFactory(user=user, item=item, progress=progress)
    ReadingProgress.objects.filter(pk=row.pk).update(
        updated_at=timezone.now() - timedelta(days=days_ago),
        completed_at=timezone.now() if completed else None,
    )
    return row


@pytest.fixture
def world(user):
    """Two topics, a followed newsletter, some reading started, and other readers' clicks."""
    tech, food = CategoryFactory(name="Tech"), CategoryFactory(name="Food")
    followed, other = ProviderFactory(), ProviderFactory()
    SubscriptionFactory(user=user, provider=followed)
    tech_items = [make_item(hours_ago=2 + i, categories=[tech], provider=other) for i in range(8)]
    food_items = [make_item(hours_ago=3 + i, categories=[food], provider=other) for i in range(8)]
    fresh_items = [make_item(hours_ago=1 + i, provider=followed) for i in range(4)]
    reading = [make_item(hours_ago=40 + i, categories=[food]) for i in range(3)]
    crowd = UserFactory()
    for n, item in enumerate(food_items[:4]):
        for _ in range(4 - n):
            ingest(crowd, item, "click", hours_ago=1)
    _progress(user, reading[0], days_ago=3)
    _progress(user, reading[1], days_ago=1)
    _progress(user, reading[2], days_ago=2)
    return {
        "tech": tech,
        "food": food,
        "tech_items": tech_items,
        "food_items": food_items,
        "fresh_items": fresh_items,
        "reading": reading,
        "followed": followed,
        "crowd": crowd,
    }


def test_home_needs_authentication(api_client):
    assert_error(api_client.get(HOME), 401)
    assert_error(api_client.get(section_url("for_you"), {"cursor": "x"}), 401)


def test_home_returns_ordered_explained_sections(auth_client, world):
    response = auth_client.get(HOME)

    assert response.status_code == 200
    body = response.json()
    uuid.UUID(body["request_id"])
    assert body["degraded"] is False
    assert body["cached"] is False
    keys_served = [s["key"] for s in body["sections"]]
    assert keys_served == [k for k in SECTION_ORDER if k in keys_served]
    assert {"continue_reading", "for_you", "trending", "fresh"} <= set(keys_served)
    for s in body["sections"]:
        assert set(s) == {"key", "title", "reason", "items", "next_cursor"}
        assert s["title"] and s["items"]
        assert [e["position"] for e in s["items"]] == list(range(len(s["items"])))
        for e in s["items"]:
            assert set(e) == {
                "position",
                "item",
                "score",
                "sponsored",
                "explanation",
                "top_features",
            }
            assert e["sponsored"] is False  # no campaign runs
            assert e["top_features"] == []  # no reranker is active
            assert e["item"]["provider"]["id"] and e["item"]["provider"]["name"]
            assert isinstance(e["score"], float | int)
            assert e["explanation"] and all(
                isinstance(v, float | int) for v in e["explanation"].values()
            )
    for_you = sections(body)["for_you"]["items"][0]
    # Every linear signal, and only features the learned reranker knows (experience_app.learned)
    assert (
        {
            "popularity",
            "freshness",
            "affinity",
            "provider_affinity",
            "subscribed",
            "seen",
            "ctr",
            "age_hours_log",
        }
        <= set(for_you["explanation"])
        <= set(FEATURES)
    )


def test_every_response_has_its_own_request_id(auth_client, world):
    first = auth_client.get(HOME).json()
    second = auth_client.get(HOME).json()
    cursor = next(s["next_cursor"] for s in second["sections"] if s["next_cursor"])
    key = next(s["key"] for s in second["sections"] if s["next_cursor"])
    page = auth_client.get(section_url(key), {"cursor": cursor}).json()
    assert len({first["request_id"], second["request_id"], page["request_id"]}) == 3


def test_no_item_appears_twice_on_a_page(auth_client, world, user):
    # Make the same items qualify for several sections at once.
    for item in world["fresh_items"]:
        ingest(world["crowd"], item, "click", hours_ago=1)
    _progress(user, world["fresh_items"][0], days_ago=0.1)
    served = all_ids(auth_client.get(HOME).json())
    assert served and len(served) == len(set(served))


def test_continue_reading_is_started_unfinished_most_recent_first(auth_client, world, user):
    stale = make_item(hours_ago=400)
    _progress(user, stale, days_ago=30)
    finished = make_item(hours_ago=5)
    _progress(user, finished, progress=1.0, days_ago=0.5, completed=True)

    body = auth_client.get(HOME).json()

    section = sections(body)["continue_reading"]
    a, b, c = world["reading"]
    assert ids(section) == [b.id, c.id, a.id]
    assert section["reason"]
    assert section["items"][0]["explanation"] == {"progress": 0.4}
    assert stale.id not in all_ids(body)
    assert finished.id not in all_ids(body)


@override_settings(EXPERIENCE_CONTINUE_MAX_AGE_DAYS=2)
def test_stale_partial_reads_fade_out(auth_client, world):
    recent = world["reading"][1]
    assert ids(sections(auth_client.get(HOME).json())["continue_reading"]) == [recent.id]


def test_trending_is_time_decayed_popularity(auth_client, world):
    crowd = world["crowd"]
    old_hit, new_hit = make_item(hours_ago=60), make_item(hours_ago=60)
    for _ in range(6):
        ingest(crowd, old_hit, "click", hours_ago=30)  # five half-lives ago
    for _ in range(3):
        ingest(crowd, new_hit, "click", hours_ago=0.5)

    body = auth_client.get(HOME).json()
    trending = ids(sections(body)["trending"])

    food = world["food_items"]
    assert entry(body, food[0].id)["explanation"]["popularity"] > 0  # lift above 1
    assert trending.index(new_hit.id) < trending.index(old_hit.id)
    # More clicks at the same time rank higher.
    assert trending.index(food[0].id) < trending.index(food[1].id) < trending.index(food[3].id)


def test_fresh_is_the_latest_from_subscriptions(auth_client, world):
    body = auth_client.get(HOME).json()
    fresh = sections(body)["fresh"]
    assert ids(fresh) == [i.id for i in world["fresh_items"]]
    assert all(e["item"]["provider"]["id"] == world["followed"].id for e in fresh["items"])
    assert all(e["explanation"]["subscribed"] == 1.0 for e in fresh["items"])


def test_because_you_read_names_the_item_and_relates_to_it(auth_client, world, user):
    fan = UserFactory()
    anchor = world["tech_items"][5]
    co_read = make_item(hours_ago=100)  # no shared category, read by the same readers
    ingest(fan, anchor, "read", hours_ago=2)
    # Another sitting (not one session): up_next, which claims first, does not take it.
    ingest(fan, co_read, "read", hours_ago=3)
    assert post_interactions(auth_client, interaction(anchor, "click")).status_code == 200

    body = auth_client.get(HOME).json()

    section = sections(body)["because_you_read"]
    assert anchor.title in section["reason"]
    related = ids(section)
    assert related[0] == co_read.id
    tech = {i.id for i in world["tech_items"]}
    assert set(related[1:]) <= tech
    assert anchor.id not in all_ids(body)


def test_cold_user_without_interests_gets_popular_items(auth_client, world):
    body = auth_client.get(HOME).json()
    assert body["cold_start"] is True
    assert "because_you_read" not in sections(body)


def test_the_feed_is_cached_with_a_ttl_and_hits_and_misses_are_counted(auth_client, world, user):
    client = inbo_redis.state()
    first = auth_client.get(HOME).json()
    second = auth_client.get(HOME).json()

    assert (first["cached"], second["cached"]) == (False, True)
    assert first["generated_at"] == second["generated_at"]
    assert [ids(s) for s in first["sections"]] == [ids(s) for s in second["sections"]]
    assert client.hgetall(keys.feed_cache_stats()) == {"hit": "1", "miss": "1"}
    assert 0 < client.ttl(keys.feed(user.id)) <= 300


def test_feedback_invalidates_only_that_users_feed(auth_client, other_client, world):
    auth_client.get(HOME)
    other_client.get(HOME)
    item = world["tech_items"][0]

    assert post_interactions(auth_client, interaction(item, "click")).status_code == 200

    assert auth_client.get(HOME).json()["cached"] is False
    assert other_client.get(HOME).json()["cached"] is True


def test_a_dismissed_item_never_comes_back_even_from_a_cached_feed(auth_client, world, user):
    body = auth_client.get(HOME).json()
    victim = sections(body)["for_you"]["items"][0]["item"]["id"]
    # Stored while the cache could not be dropped (e.g. Redis was briefly away).
    ExperienceInteraction.objects.create(
        user=user,
        item_id=victim,
        interaction_type="dismiss",
        event_id=uuid.uuid4(),
        occurred_at=timezone.now(),
    )

    cached = auth_client.get(HOME).json()

    assert cached["cached"] is True
    assert victim not in all_ids(cached)


def test_a_hidden_item_never_comes_back(auth_client, world):
    body = auth_client.get(HOME).json()
    victim = sections(body)["trending"]["items"][0]["item"]["id"]
    assert post_interactions(auth_client, interaction(victim, "hide")).status_code == 200
    for _ in range(2):
        assert victim not in all_ids(auth_client.get(HOME).json())


def test_an_item_completed_through_the_reading_api_never_comes_back(auth_client, world, user):
    body = auth_client.get(HOME).json()
    victims = [ids(sections(body)[k])[0] for k in ("continue_reading", "for_you", "fresh")]
    for victim in victims:
        response = auth_client.put(
            f"/api/v1/reading/progress/{victim}/", {"progress": 1.0, "position": 9000}
        )
        assert response.status_code == 200

    # Reading progress forgets the cached feed when it commits: the next home is new.
    rebuilt = auth_client.get(HOME).json()
    assert rebuilt["cached"] is False
    assert not set(victims) & set(all_ids(rebuilt))

    # And a feed cached before a completion it did not hear of (Redis was away when the
    # progress committed) still filters it on every hit.
    cached_ids = all_ids(auth_client.get(HOME).json())
    reading.unsubscribe_reader_changes(experience_apps._reader_changed)
    try:
        late = next(i for i in cached_ids if i not in victims)
        auth_client.put(f"/api/v1/reading/progress/{late}/", {"progress": 1.0, "position": 1})
        cached = auth_client.get(HOME).json()
    finally:
        reading.subscribe_reader_changes(experience_apps._reader_changed)
    assert cached["cached"] is True
    assert late not in all_ids(cached)


def test_items_shown_too_often_without_a_click_rotate_out(auth_client, world):
    body = auth_client.get(HOME).json()
    tired, shown_twice, clicked = ids(sections(body)["for_you"])[:3]
    before = entry(body, shown_twice)["score"]
    earlier = (timezone.now() - timedelta(minutes=5)).isoformat()
    batch = [interaction(tired, "impression", occurred_at=earlier) for _ in range(3)]
    batch += [interaction(shown_twice, "impression", occurred_at=earlier) for _ in range(2)]
    batch += [interaction(clicked, "impression", occurred_at=earlier) for _ in range(3)]
    batch.append(interaction(clicked, "click"))
    assert post_interactions(auth_client, *batch).json()["accepted"] == len(batch)

    after = auth_client.get(HOME).json()

    served = all_ids(after)
    assert tired not in served
    assert entry(after, shown_twice)["explanation"]["seen"] == 1.0
    assert entry(after, shown_twice)["score"] < before
    assert clicked not in served or entry(after, clicked)["explanation"]["seen"] == 0.0


@override_settings(EXPERIENCE_ROTATE_AFTER_IMPRESSIONS=1)
def test_rotation_threshold_is_configurable(auth_client, world):
    body = auth_client.get(HOME).json()
    shown = ids(sections(body)["trending"])[0]
    post_interactions(auth_client, interaction(shown, "impression"))
    assert shown not in all_ids(auth_client.get(HOME).json())


# --- paging -------------------------------------------------------------------------


def _walk(client, section):
    """Every page of ``section`` after the first: (item ids, positions) of each page."""
    pages = []
    cursor = section["next_cursor"]
    while cursor:
        response = client.get(section_url(section["key"]), {"cursor": cursor})
        assert response.status_code == 200, response.content
        page = response.json()
        assert page["key"] == section["key"]
        pages.append(page)
        cursor = page["next_cursor"]
        assert len(pages) < 50
    return pages


@override_settings(EXPERIENCE_SECTION_PAGE_SIZE=3)
def test_sections_page_with_stable_cursors(auth_client, world):
    body = auth_client.get(HOME).json()
    first = sections(body)["for_you"]
    assert len(first["items"]) == 3 and first["next_cursor"]

    pages = _walk(auth_client, first)

    positions = [e["position"] for p in [first, *pages] for e in p["items"]]
    assert positions == list(range(len(positions)))
    walked = [i for p in [first, *pages] for i in ids(p)]
    assert len(walked) == len(set(walked)) > 6
    # Later pages never repeat what other sections showed on this page either.
    others = {i for s in body["sections"] if s["key"] != "for_you" for i in ids(s)}
    assert not others & set(walked)
    # The same cursor gives the same page.
    again = auth_client.get(section_url("for_you"), {"cursor": first["next_cursor"]}).json()
    assert ids(again) == ids(pages[0])
    uuid.UUID(again["request_id"])
    assert again["degraded"] is False


@override_settings(EXPERIENCE_SECTION_PAGE_SIZE=3)
def test_a_cursor_keeps_its_order_after_feedback_but_drops_dismissed_items(auth_client, world):
    body = auth_client.get(HOME).json()
    cursor = sections(body)["for_you"]["next_cursor"]
    page = auth_client.get(section_url("for_you"), {"cursor": cursor}).json()
    dismissed = ids(page)[0]
    assert post_interactions(auth_client, interaction(dismissed, "dismiss")).status_code == 200

    again = auth_client.get(section_url("for_you"), {"cursor": cursor}).json()

    assert ids(again) == ids(page)[1:]
    assert [e["position"] for e in again["items"]] == [4, 5]


def _cursor(data) -> str:
    raw = json.dumps(data).encode() if not isinstance(data, bytes) else data
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        _cursor(b"\xff\xfe"),
        _cursor(b"{not json"),
        _cursor([1, 2, 3]),
        _cursor("a string"),
        _cursor({"v": "x", "k": "for_you"}),
        _cursor({"v": "x", "k": "for_you", "o": -3}),
        _cursor({"v": "x", "k": "for_you", "o": "ten"}),
        _cursor(b'{"v": "x", "k": "for_you", "o": 1e400}'),
        _cursor(b'{"v": "x", "k": "for_you", "o": NaN}'),
        _cursor({"v": "x", "k": "for_you", "o": 10**9}),
        _cursor(b"[" * 50_000),
        "A" * 5000,
    ],
)
def test_a_bad_cursor_is_a_400_invalid_cursor(auth_client, cursor):
    response = auth_client.get(section_url("for_you"), {"cursor": cursor})
    error = assert_error(response, 400, "invalid_cursor")
    assert "cursor" in error["details"]


@override_settings(EXPERIENCE_SECTION_PAGE_SIZE=3)
@pytest.mark.parametrize("query", [{}, {"cursor": ""}], ids=["absent", "empty"])
def test_a_missing_or_empty_cursor_is_the_sections_first_page(auth_client, world, query):
    first = sections(auth_client.get(HOME).json())["for_you"]

    response = auth_client.get(section_url("for_you"), query)

    assert response.status_code == 200, response.content
    page = response.json()
    assert page["key"] == "for_you"
    assert ids(page) == ids(first)
    assert page["next_cursor"] == first["next_cursor"]


def test_an_empty_cursor_without_a_cached_feed_builds_the_first_page(auth_client, world):
    response = auth_client.get(section_url("for_you"), {"cursor": ""})

    assert response.status_code == 200, response.content
    assert [e["position"] for e in response.json()["items"]][:1] == [0]


@override_settings(EXPERIENCE_SECTION_PAGE_SIZE=3)
def test_a_cursor_of_another_section_is_a_400_invalid_cursor(auth_client, world):
    body = auth_client.get(HOME).json()
    cursor = sections(body)["for_you"]["next_cursor"]
    response = auth_client.get(section_url("trending"), {"cursor": cursor})
    error = assert_error(response, 400, "invalid_cursor")
    assert "cursor" in error["details"]


@pytest.mark.parametrize("query", [{}, {"cursor": ""}, {"cursor": "garbage"}])
def test_an_unknown_section_is_a_404_whatever_the_cursor(auth_client, query):
    error = assert_error(auth_client.get(section_url("nope"), query), 404, "not_found")
    assert error["details"] == {"section": "nope"}


def test_another_users_cursor_shows_nothing_of_theirs(auth_client, other_client, world):
    with override_settings(EXPERIENCE_SECTION_PAGE_SIZE=2):
        cursor = sections(auth_client.get(HOME).json())["continue_reading"]["next_cursor"]
        response = other_client.get(section_url("continue_reading"), {"cursor": cursor})
    assert response.status_code == 200
    assert response.json()["items"] == []


# --- queries ------------------------------------------------------------------------


@pytest.fixture
def big_world(user):
    """Enough data that every section has more than 30 items to show."""
    topic = CategoryFactory()
    followed, other = ProviderFactory(), ProviderFactory()
    SubscriptionFactory(user=user, provider=followed)
    now = timezone.now()
    items = Item.objects.bulk_create(
        Item(
            provider=followed if i % 2 else other,
            title=f"Story {i}",
            body="Words " * 300,
            published_at=now - timedelta(hours=1 + i),
        )
        for i in range(200)
    )
    Item.categories.through.objects.bulk_create(
        Item.categories.through(item_id=item.id, category_id=topic.id) for item in items
    )
    ReadingProgress.objects.bulk_create(
        ReadingProgress(user=user, item=item, progress=0.5) for item in items[160:]
    )
    crowd = UserFactory()
    events = [
        EventIn(crowd.id, item.id, EventType.CLICK, now - timedelta(minutes=n), uuid.uuid4())
        for n, item in enumerate(items[:100])
    ]
    events.append(EventIn(user.id, items[0].id, EventType.CLICK, now, uuid.uuid4()))
    assert features.events_ingest(events).counted
    return items


def _home_queries(client, *, expect_cached: bool) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(HOME)
    assert response.status_code == 200
    body = response.json()
    assert body["cached"] is expect_cached
    return len(queries), body


def test_home_runs_a_constant_number_of_queries_whatever_the_page_size(
    auth_client, big_world, user, django_assert_num_queries
):
    def cold() -> None:
        """No cached feed, facets, cards or co-reading: a cold build on equal terms."""
        inbo_redis.state().delete(keys.feed(user.id), keys.co_read(big_world[0].id))
        catalog_caches.invalidate_all()

    # The first request of a reader fills what outlives feeds (its token's cache entry).
    assert auth_client.get(HOME).status_code == 200
    cold()
    with override_settings(EXPERIENCE_SECTION_PAGE_SIZE=3):
        miss, small = _home_queries(auth_client, expect_cached=False)
        hit, _ = _home_queries(auth_client, expect_cached=True)
    assert all(len(s["items"]) == 3 for s in small["sections"])
    assert len(small["sections"]) == len(SECTION_ORDER)

    cold()
    with override_settings(EXPERIENCE_SECTION_PAGE_SIZE=30):
        with django_assert_num_queries(miss):
            large = auth_client.get(HOME).json()
        with django_assert_num_queries(hit):
            assert auth_client.get(HOME).json()["cached"] is True
    assert large["cached"] is False
    assert all(len(s["items"]) == 30 for s in large["sections"])
    assert miss <= 25 and hit <= 8


@override_settings(EXPERIENCE_SECTION_PAGE_SIZE=3)
def test_section_pages_run_a_constant_number_of_queries(
    auth_client, big_world, django_assert_num_queries
):
    body = auth_client.get(HOME).json()
    cursor = sections(body)["for_you"]["next_cursor"]
    with CaptureQueriesContext(connection) as small:
        auth_client.get(section_url("for_you"), {"cursor": cursor})
    with override_settings(EXPERIENCE_SECTION_PAGE_SIZE=30), django_assert_num_queries(len(small)):
        page = auth_client.get(section_url("for_you"), {"cursor": cursor}).json()
    assert len(page["items"]) == 30


def test_feed_cards_never_load_item_bodies(auth_client, world):
    with CaptureQueriesContext(connection) as queries:
        assert auth_client.get(HOME).status_code == 200
    assert not [q for q in queries.captured_queries if '"reading_app_item"."body"' in q["sql"]]
