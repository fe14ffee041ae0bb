"""GET /api/v1/search/: parameters, hydrated results, logging, fallback and odd input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import OperationalError, connection
from django.test import override_settings

from search_app import backends
from search_app.backends.base import BackendUnavailable
from search_app.backends.postgres import PostgresBackend
from search_app.models import SearchLog
from search_app.services import indexing
from tests.factories import CategoryFactory, ItemFactory, ProviderFactory
from tests.reading.utils import assert_error

pytestmark = pytest.mark.django_db

URL = "/api/v1/search/"


@pytest.fixture
def world():
    tech = CategoryFactory(slug="tech", name="Tech")
    ai = CategoryFactory(slug="ai", name="AI", parent=tech)
    food = CategoryFactory(slug="food", name="Food")
    weekly = ProviderFactory(name="Tech Weekly", slug="tech-weekly", categories=[tech])
    kitchen = ProviderFactory(name="Kitchen Notes", slug="kitchen-notes", language="fr")
    items = {
        "llm": ItemFactory(
            provider=weekly,
            title="Large language models in practice",
            summary="What transformers do well",
            categories=[ai],
            published_at=datetime(2024, 3, 1, tzinfo=UTC),
        ),
        "k8s": ItemFactory(
            provider=weekly,
            title="Kubernetes upgrades without downtime",
            categories=[tech],
            published_at=datetime(2024, 2, 1, tzinfo=UTC),
        ),
        "bread": ItemFactory(
            provider=kitchen,
            title="Pain de campagne",
            summary="Le levain, étape par étape",
            categories=[food],
            language="fr",
            published_at=datetime(2024, 1, 1, tzinfo=UTC),
        ),
    }
    indexing.index_pending()
    return {"items": items, "weekly": weekly, "kitchen": kitchen}


def test_search_returns_cards_highlights_facets_and_a_search_id(api_client, world):
    response = api_client.get(URL, {"q": "language models"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["total"] == 1
    assert body["backend"] == "postgres" and body["degraded"] is False
    assert body["corrected_query"] is None
    (hit,) = body["results"]
    llm = world["items"]["llm"]
    assert hit["type"] == "item" and hit["id"] == llm.pk and hit["position"] == 1
    assert hit["item"]["title"] == llm.title
    assert hit["item"]["provider"]["slug"] == "tech-weekly"
    assert hit["provider"] is None
    assert "<mark>" in hit["highlights"]["title"]
    assert body["facets"] == {
        "category": {"ai": 1, "tech": 1},
        "provider": {"tech-weekly": 1},
        "language": {"en": 1},
    }
    log = SearchLog.objects.get(search_id=body["search_id"])
    assert (log.query, log.result_count, log.user_id, log.backend) == (
        "language models",
        1,
        None,
        "postgres",
    )


def test_a_signed_in_searcher_is_logged(auth_client, user, world):
    response = auth_client.get(URL, {"q": "kubernetes", "page_size": 5})

    assert SearchLog.objects.get(search_id=response.json()["search_id"]).user_id == user.pk


def test_filters_sort_and_pages(api_client, world):
    items = world["items"]

    def result_ids(**params):
        response = api_client.get(URL, params)
        assert response.status_code == 200, response.content
        return [r["id"] for r in response.json()["results"]]

    assert result_ids(category="tech", sort="newest") == [items["llm"].pk, items["k8s"].pk]
    assert result_ids(category="ai") == [items["llm"].pk]
    assert result_ids(language="FR") == [items["bread"].pk]
    assert result_ids(provider="kitchen-notes") == [items["bread"].pk]
    assert result_ids(**{"from": "2024-02-01", "to": "2024-02-01"}) == [items["k8s"].pk]
    assert result_ids(**{"from": "2024-01-15T00:00:00Z"}) == [items["llm"].pk, items["k8s"].pk]
    first = api_client.get(URL, {"page_size": 2}).json()
    second = api_client.get(URL, {"page_size": 2, "page": 2}).json()
    assert first["total"] == second["total"] == 3
    assert [r["position"] for r in second["results"]] == [3]


def test_accents_and_typos(api_client, world):
    assert api_client.get(URL, {"q": "etape"}).json()["total"] == 1
    body = api_client.get(URL, {"q": "kubrnetes"}).json()
    assert body["corrected_query"] == "kubernetes"
    assert [r["id"] for r in body["results"]] == [world["items"]["k8s"].pk]


def test_providers_come_as_provider_cards(api_client, world):
    body = api_client.get(URL, {"q": "kitchen", "type": "providers"}).json()

    (hit,) = body["results"]
    assert hit["type"] == "provider" and hit["item"] is None
    assert hit["provider"]["slug"] == "kitchen-notes"
    assert "provider" not in body["facets"]


def test_a_result_deleted_since_indexing_is_left_out(api_client, world):
    world["items"]["k8s"].delete()  # the outbox has not run yet

    body = api_client.get(URL, {"q": "kubernetes"}).json()

    assert body["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "posts"}, "type"),
        ({"sort": "random"}, "sort"),
        ({"page": "0"}, "page"),
        ({"page": "x"}, "page"),
        ({"page_size": "51"}, "page_size"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "-5"}, "page_size"),
        ({"page_size": "1.0"}, "page_size"),
        ({"page_size": "null"}, "page_size"),
        ({"page": "1001"}, "page"),
        ({"page": "99999999999999999999"}, "page"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2024-13-01"}, "to"),
        ({"from": "2024-03-01", "to": "2024-02-01"}, "to"),
        ({"category": "not a slug"}, "category"),
        ({"provider": "x" * 300}, "provider"),
        ({"language": "english"}, "language"),
        ({"type": "providers", "provider": "tech-weekly"}, "provider"),
        ({"type": "providers", "from": "2024-01-01"}, "from"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(api_client, params, field):
    assert_error(api_client.get(URL, params), 400, "invalid", [field])


@pytest.mark.parametrize(
    "name", ["type", "sort", "page", "page_size", "from", "to", "category", "provider", "language"]
)
def test_an_empty_parameter_is_a_400_naming_it_not_its_default(api_client, name):
    assert_error(api_client.get(f"{URL}?{name}="), 400, "invalid", [name])


def test_an_empty_query_text_is_still_everything(api_client, world):
    assert api_client.get(f"{URL}?q=").json()["total"] == 3


def test_from_equal_to_is_a_one_day_range(api_client, world):
    body = api_client.get(URL, {"from": "2024-02-01", "to": "2024-02-01"}).json()
    assert [r["id"] for r in body["results"]] == [world["items"]["k8s"].pk]
    instant = "2024-02-01T00:00:00Z"
    response = api_client.get(URL, {"from": instant, "to": instant})
    assert response.status_code == 200  # an empty range, not an error


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"to": "9999-12-31"}, {"llm", "k8s", "bread"}),
        ({"to": "9999-12-31T23:59:59-14:00"}, {"llm", "k8s", "bread"}),
        ({"to": "9999-12-31T23:59:59.999999+14:00"}, {"llm", "k8s", "bread"}),
        ({"from": "0001-01-01"}, {"llm", "k8s", "bread"}),
        ({"from": "0001-01-01T00:00:00+14:00"}, {"llm", "k8s", "bread"}),
        ({"from": "0001-01-01T00:00:00-14:00", "to": "9999-12-31"}, {"llm", "k8s", "bread"}),
        ({"from": "9999-12-31"}, set()),
        ({"from": "9999-12-31T23:59:59-14:00"}, set()),
        ({"to": "0001-01-01"}, set()),
        ({"to": "0001-01-01T00:00:00+14:00"}, set()),
        ({"from": "2101-06-01", "to": "2200-01-01"}, set()),
    ],
)
def test_dates_far_out_are_clamped_to_the_supported_range(api_client, world, params, expected):
    response = api_client.get(URL, params)

    assert response.status_code == 200, response.content
    found = {r["id"] for r in response.json()["results"]}
    assert found == {world["items"][k].pk for k in expected}


@pytest.mark.parametrize("value", ["2024-01-01T00:00:00+25:00", "10000-01-01", "0000-01-01"])
def test_impossible_dates_are_a_400(api_client, value):
    assert_error(api_client.get(URL, {"to": value}), 400, "invalid", ["to"])


def test_a_page_past_the_served_window_is_empty(api_client, world):
    body = api_client.get(URL, {"page": 21, "page_size": 50}).json()

    assert body["results"] == []
    assert body["total"] == 3
    past_the_end = api_client.get(URL, {"page": 2, "page_size": 50}).json()
    assert past_the_end["results"] == [] and past_the_end["total"] == 3


def test_a_page_across_the_window_stops_at_its_last_served_result(api_client, monkeypatch):
    items = [ItemFactory(title=f"Window {i}") for i in range(3)]
    indexing.index_pending()
    monkeypatch.setattr("search_app.api.views.MAX_RESULT_WINDOW", 2)

    body = api_client.get(URL, {"q": "window", "page_size": 3}).json()

    assert body["total"] == 3
    assert [r["position"] for r in body["results"]] == [1, 2]
    assert {r["id"] for r in body["results"]} < {i.pk for i in items}


@pytest.mark.parametrize(
    "query_string",
    [
        "q=" + "kubernetes%20" * 100,  # 1,100 characters
        "q=" + "a" * 1000,
        "q=%00kubernetes%00",
        "q=%E2%80%AEkubernetes%E2%80%8F",  # RTL override, RTL mark
        "q=%F0%9F%9A%80%20kubernetes",  # emoji
        "q=%ED%A0%80kubernetes",  # a lone surrogate, UTF-8 encoded
        "q=%FF%FE",  # not UTF-8 at all
        "q=%22unterminated",
        "q=-",
        "q=%27%3A%2A%7C%26%21%3C-%3E%5C",  # ':*|&!<->\
        "q=or%20or%20and",
    ],
)
def test_odd_queries_never_fail(api_client, world, query_string):
    response = api_client.get(f"{URL}?{query_string}")

    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["query"]) <= 200
    assert "\x00" not in body["query"]


def test_the_query_is_logged_normalized(api_client, world):
    api_client.get(URL, {"q": "  Kubernetes\u200b   UPGRADES  "})

    assert SearchLog.objects.get().query == "kubernetes upgrades"


def test_an_engine_that_is_down_degrades_to_postgres(api_client, world, monkeypatch):
    class Down(PostgresBackend):
        name = "meilisearch"

        def search(self, query):
            raise BackendUnavailable("connection refused")

    monkeypatch.setitem(backends._instances, "meilisearch", Down())
    with override_settings(SEARCH_BACKEND="meilisearch"):
        body = api_client.get(URL, {"q": "kubernetes"}).json()

    assert body["degraded"] is True and body["backend"] == "postgres"
    assert body["total"] == 1
    assert SearchLog.objects.get().degraded is True


def test_postgres_unavailable_is_a_503(api_client, world, monkeypatch):
    def down(self, query):
        raise BackendUnavailable("statement timeout")

    monkeypatch.setattr(PostgresBackend, "search", down)

    assert_error(api_client.get(URL, {"q": "x"}), 503, "service_unavailable")


def test_a_slow_statement_is_cancelled_and_the_timeout_restored():
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        before = cursor.fetchone()[0]
    with override_settings(SEARCH_STATEMENT_TIMEOUT_MS=50):
        with pytest.raises(OperationalError), PostgresBackend()._bounded() as cursor:
            cursor.execute("SELECT pg_sleep(1)")
        with PostgresBackend()._bounded() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "50ms"
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == before


def test_search_costs_a_fixed_number_of_queries(api_client, world, django_assert_max_num_queries):
    api_client.get(URL, {"q": "kubernetes"})  # warm up
    with django_assert_max_num_queries(10):
        assert api_client.get(URL, {"q": "kubernetes upgrades", "page_size": 50}).status_code == 200
    with django_assert_max_num_queries(10):
        assert api_client.get(URL, {"type": "providers"}).status_code == 200


def test_the_schema_documents_search(api_client):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    search = schema["paths"]["/api/v1/search/"]["get"]
    names = {p["name"] for p in search["parameters"]}
    assert {"q", "type", "category", "provider", "language", "from", "to", "sort"} <= names
    assert {"200", "400", "503"} <= set(search["responses"])
    assert "/api/v1/search/clicks/" in schema["paths"]
    assert "/api/v1/search/analytics/" in schema["paths"]


def test_query_normalization_rules():
    from search_app.services.query import analytics_key, normalize_query

    assert normalize_query("  a\u200bb\u202e  c\x00\n\td ") == "ab c d"
    assert normalize_query("\uff4b\uff55\uff42\uff45") == "kube"  # NFKC
    assert normalize_query("\ud800x") == "x"
    long = normalize_query("word " * 300)
    assert len(long) <= 200 and not long.endswith(" ") and long.endswith("word")
    assert normalize_query("x" * 5000) == "x" * 200
    assert analytics_key("  Kubernetes  UPGRADES ") == "kubernetes upgrades"


@pytest.fixture
def rockets():
    """A small corpus about reusable rockets, with near neighbours of both words."""
    reusable = [
        ItemFactory(title=f"Reusable rockets, part {n}", summary="Boosters that land again")
        for n in range(3)
    ]
    engines = ItemFactory(title="Rocket engines explained")
    ItemFactory(title="Reusable packaging for small shops")
    rocky = ItemFactory(title="The rocky road to a launch")
    indexing.index_pending()
    return {"reusable": {i.pk for i in reusable}, "engines": engines.pk, "rocky": rocky.pk}


@pytest.mark.parametrize(
    ("q", "corrected"),
    [
        ("rokets", "rockets"),
        ("reusable rokets", "reusable rockets"),
        ("rokets reusable", "rockets reusable"),
        ("reusable rocets", "reusable rockets"),
        ("reusible rokets", "reusable rockets"),
    ],
)
def test_a_typo_in_the_last_word_is_corrected_like_in_any_other(api_client, rockets, q, corrected):
    body = api_client.get(URL, {"q": q}).json()

    assert body["corrected_query"] == corrected
    assert rockets["reusable"] <= {r["id"] for r in body["results"]}
    if "reusable" not in corrected:
        assert rockets["engines"] in {r["id"] for r in body["results"]}


def test_a_last_word_that_starts_known_words_is_a_prefix_not_a_typo(api_client, rockets):
    body = api_client.get(URL, {"q": "rock"}).json()

    assert body["corrected_query"] is None
    found = {r["id"] for r in body["results"]}
    assert {rockets["rocky"], rockets["engines"]} | rockets["reusable"] <= found
