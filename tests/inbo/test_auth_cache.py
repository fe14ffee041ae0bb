"""The token -> user cache: no query on a hit, revocation on the very next request."""

from __future__ import annotations

import importlib
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import clear_url_caches
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient, APIRequestFactory

import inbo.urls
from inbo import keys
from inbo.accounts import token_cache
from inbo.accounts.authentication import ExpiringTokenAuthentication
from tests.reading.utils import assert_error
from tests.redis_server import free_port

pytestmark = pytest.mark.django_db

CEILING = "/api/v1/_bench/ceiling/"
ME = "/api/v1/me/"


@pytest.fixture
def ceiling(settings):
    """An endpoint that reads nothing but its authentication: the benchmark's ceiling."""
    settings.INBO_BENCH_ENDPOINTS = True
    importlib.reload(inbo.urls)
    clear_url_caches()
    yield
    settings.INBO_BENCH_ENDPOINTS = False
    importlib.reload(inbo.urls)
    clear_url_caches()


@pytest.fixture
def token(user) -> Token:
    return Token.objects.create(user=user)


def _client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def _cached(key: str) -> bool:
    return _raw().exists(keys.auth_token(token_cache.digest(key))) == 1


def _raw():
    return cache._cache.get_client(write=True)


def test_a_cached_token_authenticates_without_a_query(ceiling, token):
    client = _client(token.key)
    with CaptureQueriesContext(connection) as first:
        assert client.get(CEILING).status_code == 200
    assert len(first) == 1  # the token and its user, then cached
    assert _cached(token.key)

    with CaptureQueriesContext(connection) as hit:
        response = client.get(CEILING)

    assert response.status_code == 200
    assert len(hit) == 0, [q["sql"] for q in hit.captured_queries]


def test_redis_holds_a_digest_of_the_token_never_the_key(ceiling, token):
    _client(token.key).get(CEILING)

    stored = [k.decode() for k in _raw().keys("*")]
    assert keys.auth_token(token_cache.digest(token.key)) in stored
    assert not any(token.key in k for k in stored)
    assert all(token.key.encode() not in (_raw().get(k) or b"") for k in stored)


def test_the_cached_user_is_the_user_and_loads_other_fields_on_use(token, user):
    client = _client(token.key)
    client.get(ME)

    cached_user, cached_token = token_cache.lookup(token.key)

    assert (cached_user.pk, cached_user.username) == (user.pk, user.username)
    assert (cached_user.is_active, cached_user.is_staff, cached_user.is_superuser) == (
        True,
        False,
        False,
    )
    assert cached_token.created == token.created
    assert cached_token.user is cached_user
    assert cached_user.email == user.email  # deferred: read from PostgreSQL
    assert client.get(ME).json()["email"] == user.email


def _logout(client: APIClient, token: Token) -> None:
    assert client.post("/api/v1/auth/logout/").status_code == 204


def _logout_all(client: APIClient, token: Token) -> None:
    assert client.post("/api/v1/auth/logout-all/").status_code == 204


def _delete_token(client: APIClient, token: Token) -> None:
    token.delete()


def _deactivate(client: APIClient, token: Token) -> None:
    user = get_user_model().objects.get(pk=token.user_id)
    user.is_active = False
    user.save()


def _delete_user(client: APIClient, token: Token) -> None:
    get_user_model().objects.get(pk=token.user_id).delete()


@pytest.mark.parametrize(
    ("revoke", "message"),
    [
        (_logout, "Invalid token."),
        (_logout_all, "Invalid token."),
        (_delete_token, "Invalid token."),
        (_deactivate, "User inactive or deleted."),
        (_delete_user, "Invalid token."),
    ],
    ids=["logout", "logout-all", "token-deleted", "user-deactivated", "user-deleted"],
)
def test_a_revoked_cached_token_is_refused_on_the_next_request(ceiling, token, revoke, message):
    key = token.key
    client = _client(key)
    assert client.get(CEILING).status_code == 200
    assert client.get(CEILING).status_code == 200  # a hit
    assert _cached(key)

    revoke(client, token)

    error = assert_error(client.get(CEILING), 401, "authentication_failed")
    assert error["message"] == message
    assert not _cached(key)


@pytest.mark.parametrize("change", ["password", "is_staff", "is_superuser", "username"])
def test_a_user_change_reaches_the_next_request(token, user, change):
    client = _client(token.key)
    client.get(ME)
    assert _cached(token.key)

    if change == "password":
        user.set_password("another-long-password")
    elif change == "username":
        user.username = "renamed"
    else:
        setattr(user, change, True)
    user.save()

    assert not _cached(token.key)
    request = APIRequestFactory().get(ME, HTTP_AUTHORIZATION=f"Token {token.key}")
    seen, _ = ExpiringTokenAuthentication().authenticate(request)
    fresh = get_user_model().objects.get(pk=user.pk)
    assert (seen.username, seen.is_staff, seen.is_superuser, seen.password) == (
        fresh.username,
        fresh.is_staff,
        fresh.is_superuser,
        fresh.password,
    )
    # Not cached again until the revocation's marker expires (a read that raced the change
    # could otherwise store the old user).
    assert not _cached(token.key)


def test_a_revocation_keeps_an_earlier_read_from_being_cached(token, user):
    token_cache.store(user, token)
    assert _cached(token.key)
    # A request read the token from PostgreSQL, then the token was revoked, then the
    # request stores what it read: the revocation's marker refuses it.
    token_cache.forget([token.key])

    token_cache.store(user, token)

    assert not _cached(token.key)


def test_expiry_is_checked_on_a_cache_hit(ceiling, token, settings):
    token.created = timezone.now() - timedelta(hours=2)
    token.save(update_fields=["created"])
    _raw().delete(keys.auth_token_revoked(token_cache.digest(token.key)))  # that save's marker
    settings.TOKEN_TTL_HOURS = 0
    client = _client(token.key)
    assert client.get(CEILING).status_code == 200
    assert _cached(token.key)

    settings.TOKEN_TTL_HOURS = 1
    with CaptureQueriesContext(connection) as hit:
        response = client.get(CEILING)

    error = assert_error(response, 401, "authentication_failed")
    assert "expired" in error["message"]
    assert len(hit) == 0


def test_redis_down_reads_postgresql_and_still_revokes(token, user, settings):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    caches = {"default": {**settings.CACHES["default"], "LOCATION": dead}}
    client = _client(token.key)
    with override_settings(CACHES=caches):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(ME).json()["id"] == user.pk
            assert client.get(ME).json()["id"] == user.pk
        token_sql = [q for q in queries.captured_queries if "authtoken_token" in q["sql"]]
        assert len(token_sql) == 2  # each request asked PostgreSQL

        token.delete()  # Redis cannot be told; PostgreSQL answers meanwhile

        assert_error(client.get(ME), 401, "authentication_failed")


def test_the_cache_can_be_switched_off(ceiling, token, settings):
    settings.AUTH_TOKEN_CACHE_SECONDS = 0
    client = _client(token.key)
    client.get(CEILING)

    with CaptureQueriesContext(connection) as queries:
        assert client.get(CEILING).status_code == 200

    assert len(queries) == 1
    assert not _cached(token.key)
