"""Accounts: sign up, exchange credentials for a token, who am I (token or session)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inbo.accounts.serializers import RegisterSerializer
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


@pytest.mark.parametrize("username", ["ada", "ADA"])
def test_duplicate_username_is_400_on_username(api_client, username):
    UserFactory(username="ada")
    payload = {**GOOD, "username": username, "email": "other@example.com"}
    assert_error(api_client.post(REGISTER, payload), 400, "invalid", ["username"])


@pytest.mark.parametrize("email", ["ada@example.com", "ADA@Example.com"])
def test_duplicate_email_is_400_on_email(api_client, email):
    UserFactory(username="someone", email="ada@example.com")
    error = assert_error(api_client.post(REGISTER, {**GOOD, "email": email}), 400, "invalid")
    assert set(error["details"]) == {"email"}


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


def test_username_taken_between_validation_and_insert_is_400_not_500(api_client, monkeypatch):
    UserFactory(username="ada")
    monkeypatch.setattr(RegisterSerializer, "validate_username", lambda self, value: value)

    response = api_client.post(REGISTER, {**GOOD, "email": "other@example.com"})

    assert_error(response, 400, "invalid", ["username"])
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
