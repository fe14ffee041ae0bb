"""Time and place signals (issue 13, FEAT-003/004): where the reader is, when they read,
what is read where and when, and the four signals in the home explanation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from django.test import RequestFactory
from django.utils import timezone

from experience_app import time_place
from experience_app.api.place import proxy_place
from experience_app.models import ReaderProfile
from features_app import public as features
from features_app.models import UserEvent
from inbo import keys
from inbo import redis as inbo_redis
from tests.experience.utils import (
    HOME,
    entry,
    ingest,
    interaction,
    make_item,
    post_interactions,
    section_url,
)
from tests.factories import CategoryFactory, UserFactory

pytestmark = pytest.mark.django_db

HEADER = "X-Viewer-Country"
META = "HTTP_X_VIEWER_COUNTRY"
SIGNALS = ("hour_match", "item_hour_lift", "region_popularity", "language_match")


@pytest.fixture
def proxied(settings):
    """One trusted proxy that writes the viewer's country (and region) headers."""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.PLACE_COUNTRY_HEADER = HEADER
    settings.PLACE_REGION_HEADER = "X-Viewer-Region"
    settings.PLACE_PROXY_NETWORKS = []
    return settings


def _request(**meta: str):
    return RequestFactory().get(HOME, REMOTE_ADDR=meta.pop("REMOTE_ADDR", "10.0.0.2"), **meta)


# --- place from a trusted proxy -----------------------------------------------------------


def test_the_place_header_counts_through_the_trusted_proxy(proxied):
    request = _request(
        HTTP_X_FORWARDED_FOR="198.51.100.7", **{META: "de", "HTTP_X_VIEWER_REGION": "by"}
    )
    assert proxy_place(request) == time_place.Place("DE", "BY")


def test_a_spoofed_place_header_from_a_direct_client_is_ignored(proxied, settings):
    # Straight to the app: no proxy appended an address.
    assert proxy_place(_request(**{META: "DE"})) is None
    # No proxy configured at all: whatever the headers say.
    settings.TRUSTED_PROXY_COUNT = 0
    assert proxy_place(_request(HTTP_X_FORWARDED_FOR="198.51.100.7", **{META: "DE"})) is None
    # A proxy network is configured and the peer is not in it.
    settings.TRUSTED_PROXY_COUNT = 1
    settings.PLACE_PROXY_NETWORKS = ["10.0.0.0/8"]
    outside = _request(REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_FOR="1.2.3.4", **{META: "DE"})
    inside = _request(REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="1.2.3.4", **{META: "DE"})
    assert proxy_place(outside) is None
    assert proxy_place(inside) == time_place.Place("DE")


def test_no_header_is_read_unless_one_is_configured(proxied, settings):
    settings.PLACE_COUNTRY_HEADER = ""
    assert proxy_place(_request(HTTP_X_FORWARDED_FOR="1.2.3.4", **{META: "DE"})) is None


@pytest.mark.parametrize("value", ["XX", "DEU", "", "d3", "<script>", "D", "ÄÖ", "de " * 400])
def test_a_bad_country_value_is_ignored(proxied, value):
    assert proxy_place(_request(HTTP_X_FORWARDED_FOR="1.2.3.4", **{META: value})) is None


def test_a_bad_region_value_leaves_the_country(proxied):
    request = _request(
        HTTP_X_FORWARDED_FOR="1.2.3.4", **{META: "BR", "HTTP_X_VIEWER_REGION": "São Paulo!"}
    )
    assert proxy_place(request) == time_place.Place("BR", "")


# --- counting: the reader's local hours, per country -------------------------------------


def test_the_hour_profile_counts_in_the_readers_time_zone(auth_client, user):
    ReaderProfile.objects.create(user=user, timezone="Asia/Tokyo")
    item = make_item()
    at = (timezone.now() - timedelta(hours=2)).replace(minute=30, second=0, microsecond=0)
    assert post_interactions(auth_client, interaction(item, "click", occurred_at=at.isoformat()))
    local = at.astimezone(ZoneInfo("Asia/Tokyo"))
    how = local.weekday() * 24 + local.hour

    event = UserEvent.objects.get(user_id=user.id, item_id=item.id)
    assert event.context["local_how"] == how
    state = inbo_redis.state()
    assert state.hgetall(keys.user_hours(user.id)) == {str(how): "1"}
    assert state.hgetall(keys.item_hours(item.id)) == {str(local.hour): "1"}
    assert state.hget(keys.hours_global(), str(local.hour)) == "1"
    # The UTC hour (9 hours earlier in Tokyo's terms) got nothing.
    assert at.hour != local.hour
    assert state.hget(keys.item_hours(item.id), str(at.hour)) is None


def test_a_reader_without_a_profile_counts_in_utc(auth_client, user):
    item = make_item()
    at = (timezone.now() - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    post_interactions(auth_client, interaction(item, "click", occurred_at=at.isoformat()))
    assert inbo_redis.state().hgetall(keys.user_hours(user.id)) == {
        str(at.weekday() * 24 + at.hour): "1"
    }


def test_only_opens_are_counted_by_hour(auth_client, user):
    item = make_item()
    post_interactions(auth_client, interaction(item, "impression"), interaction(item, "save"))
    assert inbo_redis.state().hgetall(keys.user_hours(user.id)) == {}


def test_regional_popularity_is_counted_per_country():
    brazilian, american = make_item(), make_item()
    crowd = UserFactory()
    for _ in range(4):
        ingest(crowd, brazilian, "click", country="BR")
    ingest(crowd, american, "click", country="US")
    ingest(crowd, american, "click", country="US")
    ingest(crowd, american, "click")  # no country: counted everywhere, in no country

    now = timezone.now()
    counts = features.context_counts(crowd.id, [brazilian.id, american.id], country="BR", now=now)
    here_b, all_b = counts.regional[brazilian.id]
    here_a, all_a = counts.regional[american.id]
    assert here_b == pytest.approx(4, rel=1e-3) and all_b == pytest.approx(4, rel=1e-3)
    assert here_a == 0 and all_a == pytest.approx(3, rel=1e-3)
    assert counts.region_total == (pytest.approx(4, rel=1e-3), pytest.approx(7, rel=1e-3))
    lifts = time_place.region_popularity(
        np.array([here_b, here_a]), np.array([all_b, all_a]), *counts.region_total
    )
    assert lifts is not None
    assert lifts[0] > 0 > lifts[1]


def test_a_forged_country_in_an_event_context_counts_in_no_country():
    item = make_item()
    crowd = UserFactory()
    ingest(crowd, item, "click", country="Brazil")
    counts = features.context_counts(crowd.id, [item.id], country="BR", now=timezone.now())
    assert counts.regional[item.id][0] == 0
    assert counts.region_total[0] == 0


def test_the_profile_place_is_stored_with_the_event(auth_client, user):
    ReaderProfile.objects.create(user=user, country="BR", region="SP")
    item = make_item()
    post_interactions(auth_client, interaction(item, "click"))
    context = UserEvent.objects.get(user_id=user.id, item_id=item.id).context
    assert (context["country"], context["region"]) == ("BR", "SP")


def test_the_proxy_place_is_stored_when_the_profile_has_none(auth_client, user, proxied):
    item = make_item()
    auth_client.post(
        "/api/v1/experience/interactions/",
        {"interactions": [interaction(item, "click")]},
        format="json",
        HTTP_X_FORWARDED_FOR="198.51.100.7",
        **{META: "PT"},
    )
    assert UserEvent.objects.get(user_id=user.id, item_id=item.id).context["country"] == "PT"


# --- the signals --------------------------------------------------------------------------


def test_signals_are_zero_or_absent_without_data():
    lifts = time_place.hour_lifts(np.zeros((2, 24)), np.zeros(24))
    assert np.allclose(time_place.item_hour_lift(lifts, 7), 0)
    share = time_place.user_hour_share({}, np.zeros(24))
    assert np.allclose(time_place.hour_match(share, lifts), 0)
    assert time_place.region_popularity(np.zeros(1), np.zeros(1), 0.0, 10.0) is None
    assert time_place.language_match("", "en") is None
    assert time_place.language_match("pt-BR", "pt") == 1.0
    assert time_place.language_match("en", "pt") == 0.0


def test_a_morning_item_lifts_in_the_morning_and_matches_a_morning_reader():
    everyone = np.full(24, 10.0)
    hours = np.zeros((2, 24))
    hours[0, 8] = 30  # read at 8h
    hours[1, 21] = 30  # read at 21h
    lifts = time_place.hour_lifts(hours, everyone)
    morning = time_place.item_hour_lift(lifts, 8)
    assert morning[0] > 0 > morning[1]
    reader = time_place.user_hour_share({8: 5, 24 + 8: 5, 9: 3}, everyone)  # reads at 8-9h
    match = time_place.hour_match(reader, lifts)
    assert match[0] > 0 > match[1]


@pytest.fixture
def placed_world(user):
    """A reader in Brazil who reads Portuguese in their mornings (São Paulo), and a crowd:
    one item read in Brazil, one in the US."""
    ReaderProfile.objects.create(
        user=user, timezone="America/Sao_Paulo", country="BR", region="SP", language="pt"
    )
    topic = CategoryFactory()
    brazilian = make_item(categories=[topic], language="pt")
    american = make_item(categories=[topic], language="en")
    crowd = UserFactory()
    for _ in range(5):
        ingest(crowd, brazilian, "click", country="BR", local_how=8)
        ingest(crowd, american, "click", country="US", local_how=20)
    return brazilian, american


def test_the_home_explains_items_with_the_time_and_place_signals(auth_client, user, placed_world):
    brazilian, american = placed_world
    body = auth_client.get(HOME).json()
    b, a = entry(body, brazilian.id), entry(body, american.id)
    assert b is not None and a is not None
    for e in (b, a):
        assert set(SIGNALS) <= set(e["explanation"])
    assert b["explanation"]["language_match"] == 1.0
    assert a["explanation"]["language_match"] == 0.0
    assert b["explanation"]["region_popularity"] > 0 > a["explanation"]["region_popularity"]
    local_hour = timezone.now().astimezone(ZoneInfo("America/Sao_Paulo")).hour
    lifts = {e["item"]["id"]: e["explanation"]["item_hour_lift"] for e in (b, a)}
    if local_hour in (7, 8, 9):
        assert lifts[brazilian.id] > 0
    if local_hour in (19, 20, 21):
        assert lifts[american.id] > 0

    # The served log keeps them (the learned reranker's training rows).
    [record] = [json.loads(r) for r in inbo_redis.state().lrange(keys.served_buffer(), 0, -1)]
    logged = {i["item_id"]: i["signals"] for i in record["items"]}
    assert logged[brazilian.id]["region_popularity"] == b["explanation"]["region_popularity"]


def test_the_proxy_place_reaches_the_feed_and_a_new_place_builds_it_again(
    auth_client, user, proxied
):
    item, elsewhere = make_item(), make_item()
    crowd = UserFactory()
    for _ in range(3):
        ingest(crowd, item, "click", country="DE")
        ingest(crowd, elsewhere, "click", country="US")

    unplaced = auth_client.get(HOME).json()
    assert "region_popularity" not in entry(unplaced, item.id)["explanation"]

    placed = auth_client.get(HOME, HTTP_X_FORWARDED_FOR="198.51.100.7", **{META: "DE"}).json()
    assert placed["cached"] is False  # built for the reader the proxy placed in Germany
    assert entry(placed, item.id)["explanation"]["region_popularity"] > 0
    again = auth_client.get(HOME, HTTP_X_FORWARDED_FOR="198.51.100.7", **{META: "DE"}).json()
    assert again["cached"] is True


def test_the_profile_country_wins_over_the_proxy(auth_client, user, proxied):
    ReaderProfile.objects.create(user=user, country="US")
    item, elsewhere = make_item(), make_item()
    crowd = UserFactory()
    for _ in range(3):
        ingest(crowd, item, "click", country="DE")
        ingest(crowd, elsewhere, "click", country="US")
    body = auth_client.get(HOME, HTTP_X_FORWARDED_FOR="198.51.100.7", **{META: "DE"}).json()
    # Read only in Germany: in the reader's own country (the profile's), it is not.
    assert entry(body, item.id)["explanation"]["region_popularity"] < 0


def test_without_redis_the_counted_signals_are_absent_and_nothing_fails(
    auth_client, user, redis_state_server
):
    ReaderProfile.objects.create(user=user, country="BR", language="pt")
    item = make_item(language="pt")
    redis_state_server.stop()

    response = auth_client.get(HOME)
    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True
    explanation = entry(body, item.id)["explanation"]
    assert explanation["language_match"] == 1.0  # needs no counter
    assert not {"hour_match", "item_hour_lift", "region_popularity"} & set(explanation)

    # Interactions are still stored, stamped with the reader's time and place.
    assert post_interactions(auth_client, interaction(item, "click")).status_code == 200
    context = UserEvent.objects.get(user_id=user.id, item_id=item.id).context
    assert context["country"] == "BR" and "local_how" in context


def test_an_unknown_time_zone_in_a_profile_reads_as_utc(auth_client, user):
    ReaderProfile.objects.create(user=user, timezone="Mars/Olympus_Mons")
    item = make_item()
    at = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    post_interactions(auth_client, interaction(item, "click", occurred_at=at.isoformat()))
    how = UserEvent.objects.get(user_id=user.id, item_id=item.id).context["local_how"]
    assert how == at.weekday() * 24 + at.hour


def test_a_reset_forgets_the_readers_hours_not_the_items(auth_client, user):
    item = make_item()
    post_interactions(auth_client, interaction(item, "click"))
    state = inbo_redis.state()
    assert state.exists(keys.user_hours(user.id))

    assert auth_client.post("/api/v1/me/profile/reset/").status_code == 200

    assert not state.exists(keys.user_hours(user.id))
    assert state.exists(keys.item_hours(item.id))  # what the crowd reads when stays


def test_a_section_page_built_again_keeps_the_proxy_place(auth_client, user, proxied):
    item, elsewhere = make_item(), make_item()
    crowd = UserFactory()
    for _ in range(3):
        ingest(crowd, item, "click", country="DE")
        ingest(crowd, elsewhere, "click", country="US")
    # No cached feed: the page is cut from a feed built for this request.
    signals = {}
    for key in ("trending", "for_you"):
        page = auth_client.get(
            section_url(key), HTTP_X_FORWARDED_FOR="198.51.100.7", **{META: "DE"}
        ).json()
        signals |= {e["item"]["id"]: e["explanation"] for e in page["items"]}
    assert signals[item.id]["region_popularity"] > 0 > signals[elsewhere.id]["region_popularity"]


def test_a_countrys_regional_set_keeps_its_most_read_items_only(monkeypatch):
    monkeypatch.setattr(keys, "REGION_ITEMS_MAX", 3)
    items = [make_item() for _ in range(5)]
    crowd = UserFactory()
    # Most read first: a later item enters the full set only when its opens outweigh the
    # (decayed) opens of the set's least read item.
    for n, item in reversed(list(enumerate(items, start=1))):
        for _ in range(n):
            ingest(crowd, item, "click", country="BR")
    counts = features.context_counts(
        crowd.id, [i.id for i in items], country="BR", now=timezone.now()
    )
    kept = [i.id for i in items if counts.regional[i.id][0] > 0]
    assert kept == [i.id for i in items[2:]]  # the three most read
    assert counts.regional[items[0].id][1] == pytest.approx(1, rel=1e-3)  # everyone's stays


def test_a_country_and_language_set_in_the_profile_take_effect_on_the_next_home(auth_client, user):
    item, elsewhere = make_item(language="pt"), make_item(language="en")
    crowd = UserFactory()
    for _ in range(3):
        ingest(crowd, item, "click", country="BR")
        ingest(crowd, elsewhere, "click", country="US")
    before = entry(auth_client.get(HOME).json(), item.id)["explanation"]
    assert "region_popularity" not in before and "language_match" not in before

    response = auth_client.patch(
        "/api/v1/me/profile/", {"country": "BR", "language": "pt"}, format="json"
    )
    assert response.status_code == 200, response.content

    body = auth_client.get(HOME).json()
    assert body["cached"] is False
    after = entry(body, item.id)["explanation"]
    assert after["region_popularity"] > 0 and after["language_match"] == 1.0
