"""Clicks on results, and analytics computed by PostgreSQL (API and admin)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from search_app import selectors
from search_app.models import SearchClick, SearchLog
from tests.factories import UserFactory
from tests.reading.utils import assert_error

pytestmark = pytest.mark.django_db

CLICKS = "/api/v1/search/clicks/"
ANALYTICS = "/api/v1/search/analytics/"
DAY = datetime(2024, 5, 10, 12, tzinfo=UTC)


def log(query: str, results: int = 3, *, page: int = 1, at: datetime = DAY, **kw) -> SearchLog:
    return SearchLog.objects.create(
        query=query, result_count=results, page=page, backend="postgres", created_at=at, **kw
    )


def click(search: SearchLog, object_id: int, position: int) -> None:
    SearchClick.objects.create(search=search, object_id=object_id, position=position)


@pytest.fixture
def period_logs():
    """In the period: python x3 (two clicked: positions 1 and 3; one at 4 too), rust x2 with
    no result, an empty browse, a second page of python; one search outside the period."""
    first, second, third = (log("python") for _ in range(3))
    click(first, 10, 1)
    click(first, 11, 4)
    click(second, 12, 3)
    log("rust", 0)
    log("rust", 0, degraded=True)
    log("", 50)
    page_two = log("python", page=2)
    click(page_two, 30, 25)
    log("python", at=DAY - timedelta(days=30))
    return third


@pytest.fixture
def staff_client():
    client = APIClient()
    client.force_authenticate(UserFactory(is_staff=True))
    return client


# --- Clicks ----------------------------------------------------------------------------


def test_a_click_is_recorded_once_per_result(api_client):
    search = log("python")
    body = {"search_id": str(search.search_id), "id": 42, "position": 2}

    first = api_client.post(CLICKS, body, format="json")
    again = api_client.post(CLICKS, body, format="json")

    assert first.status_code == again.status_code == 201
    assert (first.json(), again.json()) == ({"recorded": True}, {"recorded": False})
    assert list(SearchClick.objects.values_list("object_id", "position")) == [(42, 2)]


def test_a_click_on_an_unknown_search_is_a_400_naming_search_id(api_client):
    body = {"search_id": str(uuid.uuid4()), "id": 1, "position": 1}

    assert_error(api_client.post(CLICKS, body, format="json"), 400, "invalid", ["search_id"])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"search_id": "nope", "id": 1, "position": 1}, "search_id"),
        ({"search_id": str(uuid.uuid4()), "id": 0, "position": 1}, "id"),
        ({"search_id": str(uuid.uuid4()), "id": 1, "position": 0}, "position"),
        ({"search_id": str(uuid.uuid4()), "id": 1}, "position"),
    ],
)
def test_malformed_clicks_are_a_400_naming_the_field(api_client, body, field):
    assert_error(api_client.post(CLICKS, body, format="json"), 400, "invalid", [field])


def test_a_search_then_a_click_round_trip(api_client):
    search_id = api_client.get("/api/v1/search/", {"q": "anything"}).json()["search_id"]

    response = api_client.post(
        CLICKS, {"search_id": search_id, "id": 7, "position": 1}, format="json"
    )

    assert response.status_code == 201
    assert SearchClick.objects.get().search.search_id == uuid.UUID(search_id)


# --- Figures ---------------------------------------------------------------------------


def test_figures_are_computed_over_the_period(period_logs, django_assert_num_queries):
    start, end = DAY - timedelta(days=1), DAY + timedelta(days=1)
    with django_assert_num_queries(4):
        summary = selectors.analytics_summary(start, end)

    assert summary.searches == 7  # every result page served in the period
    assert summary.searches_with_clicks == 3
    assert summary.click_through_rate == pytest.approx(3 / 7)
    assert summary.clicks == 4
    assert summary.mean_click_position == pytest.approx((1 + 4 + 3 + 25) / 4)
    assert summary.zero_result_searches == 2
    assert summary.degraded_searches == 1
    assert summary.top_queries == [
        {
            "query": "python",
            "searches": 3,
            "click_through_rate": pytest.approx(2 / 3),
            "mean_results": 3.0,
        },
        {"query": "rust", "searches": 2, "click_through_rate": 0.0, "mean_results": 0.0},
    ]
    assert summary.zero_result_queries == [{"query": "rust", "searches": 2}]


def test_an_empty_period_has_no_rates():
    summary = selectors.analytics_summary(DAY, DAY + timedelta(days=1))

    assert summary.searches == 0
    assert summary.click_through_rate is None and summary.mean_click_position is None
    assert summary.top_queries == []


def test_recent_figures_for_monitoring():
    now = timezone.now()
    for latency, results in ((10.0, 5), (20.0, 0), (1000.0, 3)):
        log("q", results, at=now, latency_ms=latency)
    log("old", 0, at=now - timedelta(hours=2), latency_ms=5000.0)

    figures = selectors.recent_figures()

    assert figures["recent_searches"] == 3
    assert figures["zero_result_rate"] == pytest.approx(1 / 3)
    assert 900 < figures["search_latency_p95_ms"] <= 1000


# --- API and admin ---------------------------------------------------------------------


def test_staff_get_the_figures_for_a_chosen_period(staff_client, period_logs):
    response = staff_client.get(ANALYTICS, {"from": "2024-05-10", "to": "2024-05-10"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["searches"] == 7
    assert body["click_through_rate"] == pytest.approx(3 / 7)
    assert body["mean_click_position"] == pytest.approx(8.25)
    assert [q["query"] for q in body["top_queries"]] == ["python", "rust"]
    assert body["zero_result_queries"] == [{"query": "rust", "searches": 2}]
    assert body["date_to"].startswith("2024-05-11")


def test_the_default_period_is_the_last_seven_days(staff_client):
    log("today", at=timezone.now())

    assert staff_client.get(ANALYTICS).json()["searches"] == 1


def test_analytics_are_for_staff_only(api_client, auth_client):
    assert_error(api_client.get(ANALYTICS), 401, "not_authenticated")
    assert_error(auth_client.get(ANALYTICS), 403, "permission_denied")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2024-05-11", "to": "2024-05-10"}, "from"),
        ({"from": "2020-01-01", "to": "2024-05-10"}, "from"),
        ({"from": "soon"}, "from"),
    ],
)
def test_bad_periods_are_a_400(staff_client, params, field):
    assert_error(staff_client.get(ANALYTICS, params), 400, "invalid", [field])


@pytest.mark.parametrize("name", ["from", "to"])
def test_an_empty_day_is_a_400_naming_it_not_its_default(staff_client, name):
    assert_error(staff_client.get(f"{ANALYTICS}?{name}="), 400, "invalid", [name])


@pytest.mark.parametrize(
    ("params", "date_from", "date_to"),
    [
        ({"to": "9999-12-31"}, "2100-12-25", "2101-01-01"),
        ({"from": "9999-12-31", "to": "9999-12-31"}, "2100-12-31", "2101-01-01"),
        ({"from": "0001-01-01", "to": "0001-01-01"}, "1970-01-01", "1970-01-02"),
        ({"to": "0001-01-01"}, "1969-12-26", "1970-01-02"),
        ({"from": "0001-01-01", "to": "1972-01-01"}, None, None),  # over 366 days: 400
    ],
)
def test_days_far_out_are_clamped_never_a_server_error(staff_client, params, date_from, date_to):
    response = staff_client.get(ANALYTICS, params)

    if date_from is None:
        assert_error(response, 400, "invalid", ["from"])
        return
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["date_from"].startswith(date_from)
    assert body["date_to"].startswith(date_to)


def test_the_admin_shows_the_same_figures(admin_client, period_logs):
    changelist = admin_client.get("/admin/search_app/searchlog/")
    page = admin_client.get(
        "/admin/search_app/searchlog/analytics/", {"from": "2024-05-10", "to": "2024-05-10"}
    )

    assert changelist.status_code == 200
    assert b"Analytics" in changelist.content
    assert page.status_code == 200
    assert page.context["summary"].searches == 7
    assert b"python" in page.content and b"rust" in page.content


def test_the_outbox_admin_lists_dead_letters(admin_client):
    from search_app.models import SearchOutbox

    SearchOutbox.objects.create(
        doc_type="items",
        object_id=1,
        op="upsert",
        status="dead",
        attempts=6,
        last_error="RuntimeError: boom",
    )

    response = admin_client.get("/admin/search_app/searchoutbox/", {"status__exact": "dead"})

    assert response.status_code == 200
    assert b"boom" in response.content
