"""Browser middleware stays off the API where a request does not need it."""

from __future__ import annotations

import pytest
from django.http import HttpRequest, JsonResponse
from django.urls import path
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inbo.urls import urlpatterns as project

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


def probe(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "session": hasattr(request, "session"),
            "user": hasattr(request, "user"),
            "messages": hasattr(request, "_messages"),
        }
    )


urlpatterns = [path("api/v1/_test/probe/", probe), path("_test/probe/", probe), *project]


def test_a_token_request_to_the_api_runs_no_session_user_or_messages(auth_client):
    response = auth_client.get("/api/v1/_test/probe/")

    assert response.json() == {"session": False, "user": False, "messages": False}
    assert "Cookie" not in response.get("Vary", "")
    assert not response.cookies


def test_a_browser_session_on_the_api_keeps_its_session_and_user(user):
    browser = APIClient()
    browser.force_login(user)

    assert browser.get("/api/v1/_test/probe/").json() == {
        "session": True,
        "user": True,
        "messages": False,
    }
    assert browser.get("/api/v1/me/").json()["id"] == user.id


def test_a_token_request_with_a_session_cookie_keeps_the_session(user):
    client = APIClient()
    client.force_login(user)
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")

    assert client.get("/api/v1/_test/probe/").json()["session"] is True


def test_outside_the_api_every_middleware_runs(auth_client):
    assert auth_client.get("/_test/probe/").json() == {
        "session": True,
        "user": True,
        "messages": True,
    }


def test_the_admin_still_signs_in(admin_user):
    client = APIClient()
    assert client.login(username=admin_user.username, password="password")
    assert client.get("/admin/").status_code == 200
