"""One rule for bad pagination input on every list endpoint (docs/API.md, Pagination)."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest

from tests.factories import (
    ItemFactory,
    ReadingProgressFactory,
    SavedItemFactory,
    SubscriptionFactory,
)
from tests.reading.utils import assert_error

pytestmark = pytest.mark.django_db

PAGE_LISTS = ["/api/v1/providers/", "/api/v1/subscriptions/"]
CURSOR_LISTS = ["/api/v1/items/", "/api/v1/reading/continue/", "/api/v1/reading/saves/"]
# (list, its largest page_size)
PAGE_SIZES = [
    *((url, 100) for url in PAGE_LISTS + CURSOR_LISTS),
    ("/api/v1/search/", 50),
]
BAD_NUMBERS = ["0", "-5", "abc", "null", "", "1.5", "1.0", " 5", "+5", "1_0", "\uff15", "9" * 30]
SECTION = "/api/v1/experience/home/sections/for_you/"


@pytest.fixture
def rows(user):
    """Three rows in every list, all the user's own where the list is per user."""
    for _ in range(3):
        item = ItemFactory()
        SubscriptionFactory(user=user, provider=item.provider)
        SavedItemFactory(user=user, item=item)
        ReadingProgressFactory(user=user, item=item, progress=0.5)


@pytest.mark.parametrize(("url", "largest"), PAGE_SIZES)
@pytest.mark.parametrize("value", [*BAD_NUMBERS, "max+1"])
def test_a_bad_page_size_is_a_400_naming_it_on_every_list(auth_client, url, largest, value):
    value = str(largest + 1) if value == "max+1" else value
    error = assert_error(auth_client.get(url, {"page_size": value}), 400, "invalid", ["page_size"])
    assert error["details"]["page_size"] == [f"Must be a whole number from 1 to {largest}."]


@pytest.mark.parametrize(("url", "largest"), PAGE_SIZES)
def test_page_size_from_1_to_its_largest_is_accepted(auth_client, rows, url, largest):
    for size in (1, largest):
        response = auth_client.get(url, {"page_size": size})
        assert response.status_code == 200, response.content
        assert len(response.json()["results"]) == min(size, 3 if "search" not in url else 0)


@pytest.mark.parametrize("url", [*PAGE_LISTS, "/api/v1/search/"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_a_bad_page_is_a_400_naming_it(auth_client, url, value):
    assert_error(auth_client.get(url, {"page": value}), 400, "invalid", ["page"])


@pytest.mark.parametrize("url", PAGE_LISTS)
def test_a_page_past_the_last_is_empty_and_points_back_to_the_last(auth_client, rows, url):
    response = auth_client.get(url, {"page_size": 2, "page": 7})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["results"] == [] and body["next"] is None
    assert body["count"] == 3
    assert "page=2" in body["previous"]
    assert len(auth_client.get(body["previous"]).json()["results"]) == 1


def test_a_page_past_an_empty_list_points_back_to_the_first(auth_client):
    body = auth_client.get("/api/v1/subscriptions/", {"page": 3}).json()

    assert body["results"] == [] and body["count"] == 0
    assert "page=" not in body["previous"]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


BAD_CURSORS = [
    "zzz",
    "%%%",
    "not a cursor!",
    _b64("o=-1"),
    _b64("r=x"),
    _b64("p=not-a-date"),
    _b64("p=2026-13-45"),
    _b64("r=1&p=\x00"),
    "A" * 5000,
]


@pytest.mark.parametrize("url", [*CURSOR_LISTS, SECTION])
@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_a_garbage_cursor_is_a_400_invalid_cursor_on_every_list(auth_client, rows, url, cursor):
    error = assert_error(auth_client.get(url, {"cursor": cursor}), 400, "invalid_cursor")
    assert "cursor" in error["details"]


@pytest.mark.parametrize("url", CURSOR_LISTS)
def test_an_empty_cursor_is_the_first_page(auth_client, rows, url):
    first = auth_client.get(url, {"page_size": 2}).json()

    response = auth_client.get(f"{url}?cursor=&page_size=2")

    assert response.status_code == 200, response.content
    assert response.json() == first


@pytest.mark.parametrize("url", CURSOR_LISTS)
def test_a_position_far_out_in_a_cursor_is_answered(auth_client, rows, url):
    for position in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
        response = auth_client.get(url, {"cursor": _b64(urlencode({"p": position}))})
        assert response.status_code == 200, response.content


def test_the_schema_states_the_bounds_of_every_pagination_parameter(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    expected = {url: largest for url, largest in PAGE_SIZES}
    for url, largest in expected.items():
        params = {p["name"]: p for p in schema["paths"][url]["get"]["parameters"]}
        assert params["page_size"]["schema"]["minimum"] == 1, url
        assert params["page_size"]["schema"]["maximum"] == largest, url
        if url in PAGE_LISTS or "search" in url:
            assert params["page"]["schema"]["minimum"] == 1, url
            assert "maximum" in params["page"]["schema"], url
        else:
            assert params["cursor"]["required"] is False, url
        assert "400" in schema["paths"][url]["get"]["responses"], url
    section = schema["paths"]["/api/v1/experience/home/sections/{key}/"]["get"]
    cursor = next(p for p in section["parameters"] if p["name"] == "cursor")
    assert cursor.get("required", False) is False
    assert {"400", "401", "404"} <= set(section["responses"])
