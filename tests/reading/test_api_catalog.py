"""The catalog: newsletters (providers) and their items, readable without signing in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from reading_app.models import Item
from tests.factories import CategoryFactory, ItemFactory, ProviderFactory
from tests.reading.utils import assert_error

pytestmark = pytest.mark.django_db

PROVIDERS = "/api/v1/providers/"
ITEMS = "/api/v1/items/"


@pytest.fixture
def tree():
    """tech > ai, and an unrelated top-level category."""
    tech = CategoryFactory(name="Tech", slug="tech")
    return {
        "tech": tech,
        "ai": CategoryFactory(name="AI", slug="ai", parent=tech),
        "food": CategoryFactory(name="Food", slug="food"),
    }


def _slugs(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["slug"] for row in response.json()["results"]]


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- Providers -----------------------------------------------------------------------------


def test_providers_are_listed_anonymously_with_page_pagination(api_client, tree):
    ProviderFactory(name="Bravo", slug="bravo", categories=[tree["ai"]])
    ProviderFactory(name="Alpha", slug="alpha")
    ProviderFactory(name="Charlie", slug="charlie")

    response = api_client.get(PROVIDERS, {"page_size": 2})

    body = response.json()
    assert response.status_code == 200
    assert body["count"] == 3
    assert [p["slug"] for p in body["results"]] == ["alpha", "bravo"]
    assert body["next"] and body["previous"] is None
    assert body["results"][1]["categories"] == [{"slug": "ai", "name": "AI", "parent": "tech"}]
    assert _slugs(api_client.get(body["next"])) == ["charlie"]


def test_providers_filter_by_category_includes_subcategories(api_client, tree):
    ProviderFactory(slug="general-tech", categories=[tree["tech"]])
    ProviderFactory(slug="ai-weekly", categories=[tree["ai"]])
    ProviderFactory(slug="both", categories=[tree["tech"], tree["ai"]])
    ProviderFactory(slug="recipes", categories=[tree["food"]])

    assert sorted(_slugs(api_client.get(PROVIDERS, {"category": "tech"}))) == [
        "ai-weekly",
        "both",
        "general-tech",
    ]
    assert sorted(_slugs(api_client.get(PROVIDERS, {"category": "ai"}))) == ["ai-weekly", "both"]
    assert _slugs(api_client.get(PROVIDERS, {"category": "unknown"})) == []


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"language": "de"}, ["german"]),
        ({"country": "FR"}, ["french"]),
        ({"is_sponsored": "true"}, ["sponsored"]),
        ({"is_sponsored": "false"}, ["french", "german"]),
        ({"language": "en", "is_sponsored": "true"}, ["sponsored"]),
    ],
)
def test_providers_filter_by_language_country_and_sponsorship(api_client, params, expected):
    ProviderFactory(slug="german", language="de", country="DE")
    ProviderFactory(slug="french", language="fr", country="FR")
    ProviderFactory(slug="sponsored", language="en", country="US", is_sponsored=True)

    assert sorted(_slugs(api_client.get(PROVIDERS, params))) == expected


def test_provider_detail_by_slug(api_client, tree):
    provider = ProviderFactory(slug="the-economist", categories=[tree["tech"]])

    response = api_client.get(f"{PROVIDERS}the-economist/")

    assert response.status_code == 200
    assert response.json()["id"] == provider.id
    assert response.json()["categories"] == [{"slug": "tech", "name": "Tech", "parent": None}]


def test_unknown_provider_slug_is_404(api_client):
    assert_error(api_client.get(f"{PROVIDERS}nope/"), 404, "not_found")


# --- Items ---------------------------------------------------------------------------------


def test_items_list_only_published_items_newest_first_without_body(api_client):
    now = timezone.now()
    old = ItemFactory(published_at=now - timedelta(days=1))
    new = ItemFactory(published_at=now)
    ItemFactory(published_at=now, status=Item.Status.UNAVAILABLE)

    response = api_client.get(ITEMS)

    assert _ids(response) == [new.id, old.id]
    assert "body" not in response.json()["results"][0]
    assert "count" not in response.json()  # cursor pagination


def test_items_cursor_pagination_walks_every_item_once(api_client):
    now = timezone.now()
    items = [ItemFactory(published_at=now - timedelta(minutes=i)) for i in range(5)]
    items.append(ItemFactory(published_at=now - timedelta(minutes=4)))  # a tie on published_at

    seen: list[int] = []
    url: str | None = f"{ITEMS}?page_size=2"
    while url:
        response = api_client.get(url)
        assert len(response.json()["results"]) <= 2
        seen += _ids(response)
        url = response.json()["next"]

    expected = sorted(items, key=lambda i: (i.published_at, i.id), reverse=True)
    assert seen == [i.id for i in expected]


def test_items_filter_by_provider_slug(api_client):
    mine = ItemFactory(provider=ProviderFactory(slug="mine"))
    ItemFactory(provider=ProviderFactory(slug="theirs"))

    assert _ids(api_client.get(ITEMS, {"provider": "mine"})) == [mine.id]
    assert _ids(api_client.get(ITEMS, {"provider": "nobody"})) == []


def test_items_filter_by_category_includes_subcategories_without_duplicates(api_client, tree):
    now = timezone.now()
    general = ItemFactory(categories=[tree["tech"]], published_at=now)
    ai = ItemFactory(categories=[tree["ai"]], published_at=now - timedelta(hours=1))
    both = ItemFactory(categories=[tree["tech"], tree["ai"]], published_at=now - timedelta(hours=2))
    ItemFactory(categories=[tree["food"]])

    assert _ids(api_client.get(ITEMS, {"category": "tech"})) == [general.id, ai.id, both.id]
    assert _ids(api_client.get(ITEMS, {"category": "ai"})) == [ai.id, both.id]


@pytest.fixture
def dated_items():
    return {
        "oct31_23h": ItemFactory(published_at=datetime(2026, 10, 31, 23, 0, tzinfo=UTC)),
        "nov1_10h": ItemFactory(published_at=datetime(2026, 11, 1, 10, 0, tzinfo=UTC)),
        "nov2_00h": ItemFactory(published_at=datetime(2026, 11, 2, 0, 0, tzinfo=UTC)),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"published_after": "2026-11-01"}, ["nov2_00h", "nov1_10h"]),
        ({"published_before": "2026-11-02"}, ["nov1_10h", "oct31_23h"]),
        ({"published_after": "2026-11-01", "published_before": "2026-11-02"}, ["nov1_10h"]),
        ({"published_after": "2026-11-01T10:00:00Z"}, ["nov2_00h", "nov1_10h"]),
        ({"published_after": "2026-11-01T10:00:01Z"}, ["nov2_00h"]),
        ({"published_after": "2026-11-01T11:00:00+01:00"}, ["nov2_00h", "nov1_10h"]),
        ({"published_before": "2026-11-01T10:00:00"}, ["oct31_23h"]),  # naive means UTC
        # Far out, with offsets: answered (no overflow), everything or nothing.
        ({"published_before": "9999-12-31T23:59:59-14:00"}, ["nov2_00h", "nov1_10h", "oct31_23h"]),
        ({"published_after": "0001-01-01T00:00:00+14:00"}, ["nov2_00h", "nov1_10h", "oct31_23h"]),
        ({"published_after": "9999-12-31"}, []),
        ({"published_before": "0001-01-01"}, []),
        # Offsets Python reads but PostgreSQL refuses (beyond ±15:59): read in UTC.
        (
            {"published_before": "9398-04-02T10:53:57.2543+23:52"},
            ["nov2_00h", "nov1_10h", "oct31_23h"],
        ),
        ({"published_after": "2026-11-01T10:00:00+23:59"}, ["nov2_00h", "nov1_10h", "oct31_23h"]),
    ],
)
def test_items_filter_by_published_date_or_datetime(api_client, dated_items, params, expected):
    assert _ids(api_client.get(ITEMS, params)) == [dated_items[k].id for k in expected]


@pytest.mark.parametrize("value", ["true", "false"])
def test_is_sponsored_is_a_boolean_in_the_schema_and_takes_true_or_false(api_client, value):
    ProviderFactory(is_sponsored=value == "true")
    ProviderFactory(is_sponsored=value != "true")

    rows = api_client.get(PROVIDERS, {"is_sponsored": value}).json()["results"]

    assert [r["is_sponsored"] for r in rows] == [value == "true"]
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    params = {p["name"]: p for p in schema["paths"][PROVIDERS]["get"]["parameters"]}
    assert {"type": "boolean"} in params["is_sponsored"]["schema"]["anyOf"]
    # Empty means no filter, as for every catalog filter (and the schema says so).
    assert len(api_client.get(PROVIDERS, {"is_sponsored": ""}).json()["results"]) == 2
    assert_error(api_client.get(PROVIDERS, {"is_sponsored": "2"}), 400, "invalid", ["is_sponsored"])


def test_item_detail_has_the_body(api_client, tree):
    item = ItemFactory(body="The full text.", categories=[tree["ai"]])

    response = api_client.get(f"{ITEMS}{item.id}/")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["body"]) == (item.id, "The full text.")
    assert body["provider"]["slug"] == item.provider.slug
    assert body["categories"] == [{"slug": "ai", "name": "AI", "parent": "tech"}]


def test_unavailable_item_detail_is_404(api_client):
    item = ItemFactory(status=Item.Status.UNAVAILABLE, body="", url="")
    assert_error(api_client.get(f"{ITEMS}{item.id}/"), 404, "not_found")


# --- Query counts: constant however many rows ------------------------------------------------


def _providers(n: int, tree) -> None:
    for _ in range(n):
        ProviderFactory(categories=[tree["tech"], tree["ai"]])


def _items(n: int, tree) -> None:
    for _ in range(n):
        ItemFactory(categories=[tree["ai"], tree["food"]])  # a provider each


@pytest.mark.parametrize(
    ("url", "make", "queries"),
    [
        (PROVIDERS, _providers, 3),  # count, page, categories (with parents)
        (ITEMS, _items, 2),  # page (with providers), categories (with parents)
    ],
    ids=["providers", "items"],
)
def test_catalog_lists_run_a_constant_number_of_queries(
    api_client, django_assert_num_queries, tree, url, make, queries
):
    make(2, tree)
    with django_assert_num_queries(queries):
        assert len(api_client.get(url).json()["results"]) == 2

    make(13, tree)
    with django_assert_num_queries(queries):
        assert len(api_client.get(url).json()["results"]) == 15


@pytest.mark.django_db
def test_invalid_is_sponsored_value_is_a_400_naming_the_field(api_client):
    response = api_client.get("/api/v1/providers/?is_sponsored=maybe")
    assert response.status_code == 400
    assert "is_sponsored" in response.json()["error"]["details"]


def test_a_top_level_categorys_parent_is_null_and_the_schema_says_it_may_be(api_client, tree):
    ProviderFactory(slug="top", categories=[tree["food"]])

    (row,) = api_client.get(PROVIDERS).json()["results"]

    assert row["categories"] == [{"slug": "food", "name": "Food", "parent": None}]
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["components"]["schemas"]["Category"]["properties"]["parent"]["nullable"] is True


@pytest.mark.parametrize(
    "url", [PROVIDERS, ITEMS, f"{ITEMS}1/", f"{PROVIDERS}x/", "/api/v1/search/"]
)
def test_open_endpoints_refuse_a_bad_token_with_a_documented_401(api_client, url):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert_error(api_client.get(url), 401, "authentication_failed")
    api_client.credentials()
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    path = url.replace(f"{ITEMS}1/", f"{ITEMS}{{id}}/").replace(
        f"{PROVIDERS}x/", "/api/v1/providers/{slug}/"
    )
    assert "401" in schema["paths"][path]["get"]["responses"]


def test_an_empty_date_filter_means_no_filter_and_the_schema_allows_it(api_client, dated_items):
    assert len(_ids(api_client.get(f"{ITEMS}?published_after=&published_before="))) == 3
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    params = {p["name"]: p for p in schema["paths"][ITEMS]["get"]["parameters"]}
    for name in ("published_after", "published_before"):
        options = params[name]["schema"]["anyOf"]
        assert {"type": "string", "maxLength": 0} in options
        assert {o.get("format") for o in options} >= {"date", "date-time"}


@pytest.mark.parametrize("param", ["provider", "category", "language"])
def test_a_nul_in_a_text_filter_is_a_400_and_the_schema_excludes_it(api_client, param):
    assert_error(api_client.get(ITEMS, {param: "a\x00b"}), 400, "invalid", [param])

    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    params = {p["name"]: p for p in schema["paths"][ITEMS]["get"]["parameters"]}
    assert params[param]["schema"]["pattern"] == "^[^\\x00]*$"
