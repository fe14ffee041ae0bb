"""Accounts: sign up, exchange credentials for a token, who am I (token or session)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory
from tests.reading.utils import assert_error

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register/"
TOKEN = "/api/v1/auth/token/"
ME = "/api/v1/me/"
GOOD = {"username": "ada", "email": "ada@example.com", "password": "analytical-engine-1843"}


def _token_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_register_creates_the_user_and_a_token_that_works_on_me(api_client):
    response = api_client.post(REGISTER, GOOD)

    assert response.status_code == 201
    body = response.json()
    assert body["user"]["username"] == "ada"
    assert body["user"]["email"] == "ada@example.com"
    assert "password" not in body["user"]
    user = get_user_model().objects.get(username="ada")
    assert user.check_password(GOOD["password"])
    assert Token.objects.get(user=user).key == body["token"]

    me = _token_client(body["token"]).get(ME)
    assert me.status_code == 200
    assert me.json()["id"] == user.id


CONFLICT_MESSAGE = (
    "An account cannot be created with this username and email. "
    "Sign in, or choose another username or email."
)


@pytest.mark.parametrize(
    ("username", "email"),
    [
        ("ada", "other@example.com"),
        ("ADA", "other@example.com"),
        ("someone", "ada@example.com"),
        ("someone", "ADA@Example.com"),
        ("ada", "ada@example.com"),
    ],
    ids=["username", "username-case", "email", "email-case", "both"],
)
def test_a_taken_username_or_email_is_one_generic_409_naming_neither(api_client, username, email):
    UserFactory(username="ada", email="ada@example.com")

    error = assert_error(
        api_client.post(REGISTER, {**GOOD, "username": username, "email": email}),
        409,
        "account_exists",
    )

    assert error["details"] == {}
    assert error["message"] == CONFLICT_MESSAGE
    assert get_user_model().objects.count() == 1


@pytest.mark.parametrize(
    "password",
    ["password123", "12345678901", "ada@example.com1", "short"],
    ids=["common", "numeric", "like-email", "too-short"],
)
def test_weak_password_is_400_on_password(api_client, password):
    error = assert_error(api_client.post(REGISTER, {**GOOD, "password": password}), 400, "invalid")
    assert set(error["details"]) == {"password"}
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"username", "email", "password"}),
        ({**GOOD, "username": "no spaces"}, {"username"}),
        ({**GOOD, "username": "ab"}, {"username"}),
        ({**GOOD, "email": "not-an-email"}, {"email"}),
        ({**GOOD, "password": None}, {"password"}),
    ],
)
def test_invalid_registration_names_the_fields(api_client, payload, fields):
    error = assert_error(api_client.post(REGISTER, payload), 400, "invalid")
    assert set(error["details"]) == fields


def test_username_taken_between_check_and_insert_is_the_same_409_not_500(api_client, monkeypatch):
    UserFactory(username="ada")
    # The existence check sees nothing, as when a concurrent sign-up commits right after it.
    monkeypatch.setattr(QuerySet, "exists", lambda self: False)

    response = api_client.post(REGISTER, {**GOOD, "email": "other@example.com"})

    monkeypatch.undo()
    error = assert_error(response, 409, "account_exists")
    assert error["details"] == {}
    assert get_user_model().objects.filter(username="ada").count() == 1


def test_token_endpoint_returns_the_same_token_as_register(api_client):
    registered = api_client.post(REGISTER, GOOD).json()

    response = api_client.post(TOKEN, {"username": "ada", "password": GOOD["password"]})

    assert response.status_code == 200
    assert response.json()["token"] == registered["token"]
    assert response.json()["user"]["username"] == "ada"


def test_token_endpoint_creates_a_token_on_first_use(api_client):
    user = UserFactory()
    response = api_client.post(
        TOKEN, {"username": user.username, "password": "correct-horse-battery"}
    )
    assert response.status_code == 200
    assert _token_client(response.json()["token"]).get(ME).json()["id"] == user.id


@pytest.mark.parametrize(
    "credentials",
    [
        {"username": "reader", "password": "wrong-password"},
        {"username": "nobody", "password": "correct-horse-battery"},
        {"username": "READER", "password": "correct-horse-battery"},
    ],
    ids=["wrong-password", "unknown-user", "username-case"],
)
def test_bad_credentials_are_400_invalid_credentials(api_client, credentials):
    UserFactory(username="reader")
    assert_error(api_client.post(TOKEN, credentials), 400, "invalid_credentials")


def test_inactive_user_cannot_get_a_token(api_client):
    user = UserFactory(username="reader", is_active=False)
    credentials = {"username": user.username, "password": "correct-horse-battery"}
    assert_error(api_client.post(TOKEN, credentials), 400, "invalid_credentials")


def test_token_request_without_fields_names_them(api_client):
    error = assert_error(api_client.post(TOKEN, {}), 400, "invalid")
    assert set(error["details"]) == {"username", "password"}


def test_me_with_a_token(auth_client, user):
    body = auth_client.get(ME).json()
    assert (body["id"], body["username"], body["email"]) == (user.id, user.username, user.email)


def test_me_with_a_session(user):
    client = APIClient()
    assert client.login(username=user.username, password="correct-horse-battery")
    assert client.get(ME).json()["id"] == user.id


def test_session_auth_works_on_the_reading_api(user):
    client = APIClient()
    client.force_login(user)
    assert client.get("/api/v1/reading/saves/").status_code == 200


def test_me_anonymously_is_401(api_client):
    assert_error(api_client.get(ME), 401, "not_authenticated")


# --- token expiry and revocation --------------------------------------------------------

LOGOUT = "/api/v1/auth/logout/"
LOGOUT_ALL = "/api/v1/auth/logout-all/"


def _age_token(key: str, hours: float) -> None:
    # Saved, not update()d: an update behind the ORM's back would not reach the token cache
    # (a token's age changes by time passing, which every request checks).
    token = Token.objects.get(key=key)
    token.created = timezone.now() - timedelta(hours=hours)
    token.save(update_fields=["created"])


def test_register_and_token_say_when_the_token_expires(api_client, settings):
    settings.TOKEN_TTL_HOURS = 24
    registered = api_client.post(REGISTER, GOOD).json()
    token = Token.objects.get(key=registered["token"])

    expires_at = parse_datetime(registered["expires_at"])
    assert expires_at == token.created + timedelta(hours=24)
    obtained = api_client.post(TOKEN, {"username": "ada", "password": GOOD["password"]}).json()
    assert parse_datetime(obtained["expires_at"]) == expires_at
    assert set(obtained) == {"token", "expires_at", "user"}


def test_tokens_never_expire_when_the_ttl_is_zero(api_client, settings):
    settings.TOKEN_TTL_HOURS = 0
    registered = api_client.post(REGISTER, GOOD).json()
    assert registered["expires_at"] is None
    _age_token(registered["token"], hours=24 * 365 * 10)
    assert _token_client(registered["token"]).get(ME).status_code == 200


def test_an_expired_token_is_401_in_the_envelope(api_client, settings):
    settings.TOKEN_TTL_HOURS = 24
    key = api_client.post(REGISTER, GOOD).json()["token"]
    _age_token(key, hours=23)
    assert _token_client(key).get(ME).status_code == 200

    _age_token(key, hours=25)
    response = _token_client(key).get(ME)

    error = assert_error(response, 401, "authentication_failed")
    assert "expired" in error["message"]
    assert response["WWW-Authenticate"] == "Token"


def test_after_expiry_the_token_endpoint_issues_a_new_token(api_client, settings):
    settings.TOKEN_TTL_HOURS = 24
    old = api_client.post(REGISTER, GOOD).json()["token"]
    _age_token(old, hours=25)

    body = api_client.post(TOKEN, {"username": "ada", "password": GOOD["password"]}).json()

    assert body["token"] != old
    assert _token_client(body["token"]).get(ME).status_code == 200
    assert_error(_token_client(old).get(ME), 401, "authentication_failed")


def test_logout_revokes_the_token_it_was_sent_with(auth_client, user):
    key = Token.objects.get(user=user).key

    assert auth_client.post(LOGOUT).status_code == 204

    assert not Token.objects.filter(key=key).exists()
    assert_error(auth_client.get(ME), 401, "authentication_failed")


def test_logout_with_a_session_ends_the_session(user):
    client = APIClient(enforce_csrf_checks=False)
    client.force_login(user)

    assert client.post(LOGOUT).status_code == 204

    assert_error(client.get(ME), 401, "not_authenticated")


def test_logout_all_revokes_every_token_and_session_of_the_user_and_no_other(
    auth_client, user, other_client, other_user
):
    browser = APIClient()
    browser.force_login(user)
    other_browser = APIClient()
    other_browser.force_login(other_user)

    assert auth_client.post(LOGOUT_ALL).status_code == 204

    assert not Token.objects.filter(user=user).exists()
    assert_error(auth_client.get(ME), 401, "authentication_failed")
    assert_error(browser.get(ME), 401, "not_authenticated")
    assert other_client.get(ME).json()["id"] == other_user.id
    assert other_browser.get(ME).json()["id"] == other_user.id
    # The user signs in again with a fresh token.
    body = (
        APIClient()
        .post(TOKEN, {"username": user.username, "password": "correct-horse-battery"})
        .json()
    )
    assert _token_client(body["token"]).get(ME).json()["id"] == user.id


@pytest.mark.parametrize("path", [LOGOUT, LOGOUT_ALL])
def test_logout_anonymously_is_401(api_client, path):
    assert_error(api_client.post(path), 401, "not_authenticated")
