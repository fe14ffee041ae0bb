"""Throttles: a client address only trusted proxies vouch for, one scope per expensive
endpoint (per user and per address), 429 in the envelope with Retry-After, and fail-open
when the cache Redis is down."""

from __future__ import annotations

import logging

import pytest
from django.core.cache import caches
from django.test import RequestFactory, override_settings
from prometheus_client import REGISTRY
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inbo.api.client_ip import client_ip
from tests.factories import UserFactory
from tests.reading.utils import assert_error

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register/"
TOKEN = "/api/v1/auth/token/"
ADMIN_LOGIN = "/admin/login/"
HIGH = "100000/min"


@pytest.fixture
def rates(settings):
    """Set some scopes' rates for one test; the others stay out of the way."""

    def set_rates(**scoped: str) -> None:
        settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, **scoped}

    return set_rates


def _client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _assert_throttled(response) -> None:
    error = assert_error(response, 429, "throttled")
    wait = int(response["Retry-After"])
    assert wait >= 1
    assert error["details"] == {"retry_after_seconds": wait}


# --- the client address -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, None, "203.0.113.9"),
        (0, "198.51.100.1", "203.0.113.9"),
        (1, None, "203.0.113.9"),
        (1, "198.51.100.1", "198.51.100.1"),
        (1, "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        (2, "6.6.6.6, 198.51.100.1, 10.0.0.2", "198.51.100.1"),
        (2, "198.51.100.1", "198.51.100.1"),
        (1, "6.6.6.6, 2001:db8::1", "2001:db8::1"),
        (1, "6.6.6.6, not-an-address", "203.0.113.9"),
    ],
)
def test_client_ip_believes_only_the_entries_of_trusted_proxies(
    settings, proxies, forwarded, expected
):
    settings.TRUSTED_PROXY_COUNT = proxies
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.9", **extra)
    assert client_ip(request) == expected


def test_rotating_x_forwarded_for_cannot_dodge_the_token_throttle(api_client, rates):
    rates(auth="20/min")
    UserFactory(username="reader")
    statuses = []
    for attempt in range(300):
        response = api_client.post(
            TOKEN,
            {"username": "reader", "password": f"guess-{attempt}"},
            HTTP_X_FORWARDED_FOR=f"10.{attempt // 250}.{attempt % 250}.1",
        )
        statuses.append(response.status_code)

    assert statuses[:20] == [400] * 20
    assert statuses[20:] == [429] * 280
    _assert_throttled(response)


def test_behind_one_trusted_proxy_the_rightmost_forwarded_entry_is_the_client(
    api_client, settings, rates
):
    settings.TRUSTED_PROXY_COUNT = 1
    rates(auth="2/min")
    credentials = {"username": "nobody", "password": "x"}

    def attempt(forwarded: str):
        return api_client.post(TOKEN, credentials, HTTP_X_FORWARDED_FOR=forwarded)

    assert attempt("6.6.6.1, 198.51.100.7").status_code == 400
    assert attempt("6.6.6.2, 198.51.100.7").status_code == 400
    # What the client wrote on the left changes nothing: the proxy saw the same address.
    _assert_throttled(attempt("6.6.6.3, 198.51.100.7"))
    # Another client behind the same proxy has its own bucket.
    assert attempt("6.6.6.3, 198.51.100.8").status_code == 400


def test_register_is_throttled_per_address(api_client, rates):
    rates(auth="3/min")
    for n in range(3):
        payload = {"username": f"u{n}", "email": f"u{n}@example.com", "password": "x"}
        assert api_client.post(REGISTER, payload).status_code == 400
    _assert_throttled(api_client.post(REGISTER, {}))
    other = api_client.post(REGISTER, {}, REMOTE_ADDR="198.51.100.20")
    assert other.status_code == 400


# --- the admin login form ---------------------------------------------------------------


def test_admin_login_posts_are_throttled_per_address_with_an_admin_page(client, rates):
    rates(admin_login="3/min")
    UserFactory(username="boss", is_staff=True)
    wrong = {"username": "boss", "password": "wrong", "next": "/admin/"}
    for _ in range(3):
        response = client.post(ADMIN_LOGIN, wrong)
        assert response.status_code == 200
        assert b"Please enter the correct username and password" in response.content

    response = client.post(ADMIN_LOGIN, {**wrong, "password": "correct-horse-battery"})

    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert b"Too many sign-in attempts" in response.content
    assert b"Django administration" in response.content  # the admin's own look
    assert client.get(ADMIN_LOGIN).status_code == 200  # the form itself stays readable
    other = client.post(ADMIN_LOGIN, wrong, REMOTE_ADDR="198.51.100.30")
    assert other.status_code == 200


def test_admin_login_under_the_limit_signs_in(client, rates):
    rates(admin_login="3/min")
    UserFactory(username="boss", is_staff=True)
    response = client.post(
        ADMIN_LOGIN, {"username": "boss", "password": "correct-horse-battery", "next": "/admin/"}
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


# --- search, clicks, interactions: per user and per address ------------------------------

SCOPES = [
    ("search", "get", "/api/v1/search/", {"q": "rockets"}),
    ("search_click", "post", "/api/v1/search/clicks/", {}),
    ("interactions", "post", "/api/v1/experience/interactions/", {}),
    ("reader_control", "post", "/api/v1/me/profile/reset/", {}),
]


def _call(client: APIClient, method: str, path: str, payload: dict, address: str):
    return getattr(client, method)(path, payload, REMOTE_ADDR=address)


@pytest.mark.parametrize(("scope", "method", "path", "payload"), SCOPES, ids=[s[0] for s in SCOPES])
def test_each_scope_throttles_a_user_whatever_their_address(rates, scope, method, path, payload):
    rates(**{scope: "2/min"})
    user, other = UserFactory(), UserFactory()
    client = _client_for(user)

    for n in range(2):
        assert _call(client, method, path, payload, f"198.51.100.{n + 1}").status_code != 429
    _assert_throttled(_call(client, method, path, payload, "198.51.100.3"))
    # Another user is not affected, the other scopes neither.
    assert _call(_client_for(other), method, path, payload, "198.51.100.4").status_code != 429
    assert _client_for(user).get("/api/v1/me/").status_code == 200


@pytest.mark.parametrize(("scope", "method", "path", "payload"), SCOPES, ids=[s[0] for s in SCOPES])
def test_each_scope_throttles_an_address_whoever_signs_in(rates, scope, method, path, payload):
    rates(**{scope: "2/min"})
    address = "198.51.100.50"

    for _ in range(2):
        response = _call(_client_for(UserFactory()), method, path, payload, address)
        assert response.status_code != 429
    _assert_throttled(_call(_client_for(UserFactory()), method, path, payload, address))
    fresh = _call(_client_for(UserFactory()), method, path, payload, "198.51.100.51")
    assert fresh.status_code != 429


def test_anonymous_search_is_throttled_per_address(api_client, rates):
    rates(search="2/min")
    for _ in range(2):
        assert api_client.get("/api/v1/search/", {"q": "rockets"}).status_code == 200
    _assert_throttled(api_client.get("/api/v1/search/", {"q": "rockets"}))


def test_throttled_operations_document_429():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path, method in [
        ("/api/v1/search/", "get"),
        ("/api/v1/search/clicks/", "post"),
        ("/api/v1/experience/interactions/", "post"),
        ("/api/v1/me/profile/", "patch"),
        ("/api/v1/me/profile/reset/", "post"),
        ("/api/v1/me/mutes/", "post"),
        ("/api/v1/auth/token/", "post"),
        ("/api/v1/auth/register/", "post"),
    ]:
        assert "429" in paths[path][method]["responses"], (path, method)


# --- the cache Redis down: throttles fail open ------------------------------------------


def _unavailable(scope: str) -> float:
    value = REGISTRY.get_sample_value("inbo_throttle_unavailable_total", {"scope": scope})
    return value or 0.0


def test_with_the_cache_redis_stopped_sign_up_and_sign_in_still_work(
    api_client, settings, redis_server, rates, caplog
):
    rates(auth="20/min", admin_login="10/min")
    cache_setting = {**settings.CACHES["default"], "LOCATION": redis_server.url(1)}
    with override_settings(CACHES={"default": cache_setting}):
        try:
            assert api_client.post(TOKEN, {"username": "x", "password": "y"}).status_code == 400
            assert redis_server.client(1).dbsize() == 1  # the throttle used this server
            redis_server.stop()
            before = _unavailable("auth")

            with caplog.at_level(logging.WARNING, logger="inbo.api"):
                registered = api_client.post(
                    REGISTER,
                    {"username": "ada", "email": "ada@example.com", "password": "analytical-1843"},
                )
                obtained = api_client.post(
                    TOKEN, {"username": "ada", "password": "analytical-1843"}
                )

            assert registered.status_code == 201, registered.content
            assert obtained.status_code == 200, obtained.content
            assert obtained.json()["token"] == registered.json()["token"]
            assert _unavailable("auth") == before + 2
            assert "api.throttle_unavailable scope=auth" in caplog.text
            admin_form = APIClient().post(ADMIN_LOGIN, {"username": "ada", "password": "no"})
            assert admin_form.status_code == 200
            assert _unavailable("admin_login") >= 1
        finally:
            caches["default"].close()


def test_an_empty_rate_switches_the_scope_off(api_client, rates):
    rates(search="")
    for _ in range(5):
        assert api_client.get("/api/v1/search/", {"q": "rockets"}).status_code == 200
