"""Hostile bodies, a dead database and Django's own error pages: always the JSON envelope.

Issue 9, points 4 (nesting, size, content type), 6 (PostgreSQL down: 503 with Retry-After)
and 7 (every error under /api/ in the envelope, DEBUG included). This module is also the
URLconf of its tests (the project's routes plus a few views that fail on purpose).
"""

from __future__ import annotations

import io
import json
import random
import threading
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.test import Client, override_settings
from django.urls import path
from django.views.decorators.http import require_POST
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from experience_app.models import ExperienceInteraction
from inbo.api.errors import api_exception_handler, as_details, json_server_error
from inbo.api.parsers import JSONParser, NestingTooDeep, PayloadTooLarge, nesting_exceeds
from inbo.errors import ApplicationError, ServiceUnavailable
from inbo.urls import handler400, handler403, handler404, handler500
from inbo.urls import urlpatterns as project
from tests.reading.utils import assert_error

pytestmark = pytest.mark.django_db

INTERACTIONS = "/api/v1/experience/interactions/"
REGISTER = "/api/v1/auth/register/"


# --- Views that fail on purpose, routed by this module (pytest.mark.urls) -----------------


class BoomApiView(APIView):
    permission_classes: list = []
    authentication_classes: list = []

    def get(self, request: Any) -> Response:
        raise RuntimeError("boom in a DRF view")


def boom_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("boom in a Django view")


def count_users_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"users": get_user_model().objects.count()})


def session_writing_view(request: HttpRequest) -> HttpResponse:
    # Saved by SessionMiddleware after the view: a database write outside any view.
    request.session["seen"] = True
    return JsonResponse({"ok": True})


@require_POST
def post_only_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


urlpatterns = [
    path("api/v1/_test/boom-drf/", BoomApiView.as_view()),
    path("api/v1/_test/boom/", boom_view),
    path("api/v1/_test/users/", count_users_view),
    path("api/v1/_test/session/", session_writing_view),
    path("api/v1/_test/post-only/", post_only_view),
    *project,
]
__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]

routed_here = pytest.mark.urls(__name__)


def quiet_client() -> Client:
    """A client that returns the 500 a real client would get instead of re-raising."""
    return Client(raise_request_exception=False)


def raw_json(text: str | bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"data": text, "content_type": content_type}


# --- Point 4: nesting, size and content type of request bodies ----------------------------


def depth_of(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    return 0


def random_document(rng: random.Random, depth: int) -> Any:
    """A JSON value exactly ``depth`` deep, with strings full of brackets, quotes, escapes."""
    if depth == 0:
        return rng.choice([1, 2.5, None, True, 'a"[{\\', "]]}}", '\\\\"', "", "\u00e9[" * 3])
    children = [random_document(rng, depth - 1)]
    children += [random_document(rng, rng.randrange(depth)) for _ in range(rng.randrange(3))]
    rng.shuffle(children)
    if rng.random() < 0.5:
        return children
    return {f'k"{i}[': child for i, child in enumerate(children)}


@pytest.mark.parametrize("seed", range(40))
def test_nesting_scan_agrees_with_the_parsed_depth(seed):
    rng = random.Random(seed)
    document = random_document(rng, rng.randrange(1, 12))
    body = json.dumps(document, ensure_ascii=rng.random() < 0.5).encode()
    depth = depth_of(document)

    for limit in (depth - 1, depth, depth + 1):
        assert nesting_exceeds(body, limit) is (depth > limit), (limit, body)


@pytest.mark.parametrize(
    ("body", "limit", "exceeds"),
    [
        (b'["[[[[[[[[[["]', 2, False),  # brackets in strings do not nest
        (b'["\\"[[[[[[[[["]', 2, False),  # an escaped quote does not end the string
        (b'["\\\\", [[[1]]]]', 2, True),  # an escaped backslash does not escape the quote
        (b'{"a": {"b": {"c": 1}}}', 3, False),
        (b'{"a": {"b": {"c": {}}}}', 3, True),
        (b"[[], [[]], [[[]]], [[[[]]]]]", 5, False),
        (b"[[], [[]], [[[]]], [[[[[]]]]]]", 5, True),
        (b'"[[[[[[[[', 2, False),  # an unterminated string runs to the end
        (b"[1, 2, 3]", 0, True),
        (b"", 0, False),
    ],
)
def test_nesting_scan_reads_only_the_structure(body, limit, exceeds):
    assert nesting_exceeds(body, limit) is exceeds


def test_arrays_nested_1000_deep_in_interactions_are_400_not_a_server_error(auth_client):
    body = '{"interactions": ' + "[" * 1000 + "]" * 1000 + "}"

    error = assert_error(auth_client.post(INTERACTIONS, **raw_json(body)), 400, "nesting_too_deep")

    assert error["details"] == {"max_depth": settings.API_JSON_MAX_DEPTH}
    assert not ExperienceInteraction.objects.exists()


def test_objects_nested_100000_deep_in_anonymous_sign_up_are_400(api_client):
    body = '{"a": ' * 100_000 + "1" + "}" * 100_000

    assert_error(api_client.post(REGISTER, **raw_json(body)), 400, "nesting_too_deep")
    assert not get_user_model().objects.exists()


@override_settings(API_JSON_MAX_DEPTH=3)
def test_the_nesting_limit_is_configurable_and_inclusive(api_client):
    at_limit = {"username": [[1]], "email": "a@example.com", "password": "x"}
    too_deep = {"username": [[[1]]], "email": "a@example.com", "password": "x"}

    assert_error(api_client.post(REGISTER, at_limit, format="json"), 400, "invalid", ["username"])
    assert_error(api_client.post(REGISTER, too_deep, format="json"), 400, "nesting_too_deep")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_over_the_upload_limit_is_413_in_the_envelope(api_client):
    body = json.dumps({"username": "u" * 2000, "email": "a@example.com", "password": "x"})

    error = assert_error(api_client.post(REGISTER, **raw_json(body)), 413, "payload_too_large")

    assert error["details"] == {"max_bytes": 1000}
    assert not get_user_model().objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10)
def test_the_parser_bounds_whatever_stream_it_is_given():
    with pytest.raises(PayloadTooLarge):
        JSONParser().parse(io.BytesIO(b'{"a": "' + b"x" * 20 + b'"}'), parser_context={})
    assert JSONParser().parse(io.BytesIO(b'{"a": 1}'), parser_context={}) == {"a": 1}


def test_the_parser_scans_other_charsets_as_text():
    body = '{"k": "[[[[", "v": [[1]]}'.encode("utf-16")
    context = {"encoding": "utf-16"}

    assert JSONParser().parse(io.BytesIO(body), parser_context=context) == {
        "k": "[[[[",
        "v": [[1]],
    }
    with override_settings(API_JSON_MAX_DEPTH=2), pytest.raises(NestingTooDeep):
        JSONParser().parse(io.BytesIO(body), parser_context=context)


@pytest.mark.parametrize(
    "kwargs",
    [
        raw_json(
            "username=u&email=a%40example.com&password=x", "application/x-www-form-urlencoded"
        ),
        {"data": {"username": "u", "email": "a@example.com", "password": "x"}},  # multipart
        raw_json("<user/>", "application/xml"),
        raw_json('{"username": "u"}', "text/plain"),
    ],
    ids=["form", "multipart", "xml", "text"],
)
def test_the_api_takes_json_only_other_bodies_are_415(kwargs):
    response = Client().post(REGISTER, **kwargs)

    assert_error(response, 415, "unsupported_media_type")
    assert not get_user_model().objects.exists()


def test_the_schema_advertises_json_request_bodies_only(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    media_types = {
        media_type
        for operations in response.json()["paths"].values()
        for operation in operations.values()
        if isinstance(operation, dict)
        for media_type in operation.get("requestBody", {}).get("content", {})
    }

    assert media_types == {"application/json"}


# --- Point 6: PostgreSQL down -----------------------------------------------------------


def request_with_database_down(method: str, url: str, **kwargs: Any) -> HttpResponse:
    """The request as a fresh thread sends it while PostgreSQL refuses connections.

    The thread opens its own connection (Django's are per thread) with the settings of a
    closed port; the test's own connection and transaction are untouched.
    """
    down = {**connections.settings["default"], "HOST": "127.0.0.1", "PORT": "1"}
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["response"] = getattr(quiet_client(), method)(url, **kwargs)
        finally:
            connections.close_all()

    saved = connections.settings["default"]
    connections.settings["default"] = down
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    finally:
        connections.settings["default"] = saved
    return outcome["response"]


def assert_unavailable(response: HttpResponse) -> dict:
    if not hasattr(response, "json"):  # straight from a handler, not through the test client
        response.json = lambda: json.loads(response.content)
    error = assert_error(response, 503, "service_unavailable")
    assert response["Retry-After"] == str(settings.API_RETRY_AFTER_SECONDS)
    assert "database" in error["message"]
    return error


def test_database_down_is_503_with_retry_after_for_a_signed_in_client(user):
    token = Token.objects.create(user=user).key

    response = request_with_database_down("get", "/api/v1/me/", HTTP_AUTHORIZATION=f"Token {token}")

    assert_unavailable(response)


@pytest.mark.parametrize("debug", [False, True])
def test_database_down_is_503_for_an_anonymous_sign_up(debug):
    body = {"username": "newbie", "email": "n@example.com", "password": "a-long-password-1"}
    with override_settings(DEBUG=debug):
        response = request_with_database_down(
            "post", REGISTER, data=json.dumps(body), content_type="application/json"
        )
    assert_unavailable(response)


@routed_here
@pytest.mark.parametrize("debug", [False, True])
def test_database_down_in_a_view_outside_drf_is_503_logged_as_an_outage(debug, caplog):
    with override_settings(DEBUG=debug):
        assert_unavailable(request_with_database_down("get", "/api/v1/_test/users/"))

    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("api.database_unavailable") for m in logged)
    assert not any(m.startswith("Internal Server Error") for m in logged)  # not a bug


@routed_here
@pytest.mark.parametrize("debug", [False, True])
def test_database_down_in_a_middleware_is_503(debug):
    with override_settings(DEBUG=debug):
        assert_unavailable(request_with_database_down("get", "/api/v1/_test/session/"))


def test_service_unavailable_sets_retry_after_from_the_raiser_or_the_setting():
    def handle(exc: Exception) -> Any:
        return api_exception_handler(exc, {"request": None, "view": None})

    assert handle(ServiceUnavailable(retry_after=30))["Retry-After"] == "30"
    assert handle(ServiceUnavailable())["Retry-After"] == str(settings.API_RETRY_AFTER_SECONDS)


def test_server_error_handler_answers_503_for_a_database_outage():
    request = HttpRequest()
    try:
        raise OperationalError("connection refused")
    except OperationalError:
        response = json_server_error(request)
    assert_unavailable(response)


# --- Point 7: Django's own error pages under /api/, DEBUG included ------------------------

LONG = "x" * 10_000


@override_settings(DEBUG=True)
@pytest.mark.parametrize(
    "url",
    ["/api/v1/nope/", "/api/v1/items/abc/", "/api/v9/items/", f"/api/v1/{LONG}/", f"/api/{LONG}"],
    ids=["unknown-route", "non-numeric-id", "unknown-version", "long-path", "long-api-path"],
)
def test_unknown_urls_under_the_api_are_a_json_404_in_debug(auth_client, url):
    assert_error(auth_client.get(url), 404, "not_found")


@override_settings(DEBUG=True)
def test_a_very_long_id_is_a_json_404_in_debug(auth_client):
    assert_error(auth_client.get(f"/api/v1/items/{'9' * 10_000}/"), 404, "not_found")


@pytest.mark.parametrize("debug", [False, True])
def test_a_write_without_the_trailing_slash_is_a_404_naming_the_path(api_client, debug):
    # Django would redirect (dropping the body) or, with DEBUG, raise a RuntimeError.
    with override_settings(DEBUG=debug):
        error = assert_error(
            api_client.post("/api/v1/auth/register", {"username": "x"}, format="json"),
            404,
            "not_found",
        )

    assert error["details"] == {"path": "/api/v1/auth/register/"}


def test_a_read_without_the_trailing_slash_still_redirects(api_client):
    assert api_client.get("/api/v1/items").status_code == 301


@routed_here
@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("url", ["/api/v1/_test/boom-drf/", "/api/v1/_test/boom/"])
def test_an_unhandled_exception_is_a_json_500(debug, url):
    with override_settings(DEBUG=debug):
        error = assert_error(quiet_client().get(url), 500, "server_error")

    if debug:
        assert error["details"]["exception"].startswith("RuntimeError: boom")
    else:
        assert error["details"] == {}  # no internals outside DEBUG


@routed_here
@override_settings(DEBUG=True)
def test_a_bare_405_outside_drf_is_json_and_keeps_allow():
    response = Client().get("/api/v1/_test/post-only/")

    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "POST"


@override_settings(DEBUG=True)
def test_a_drf_405_in_debug_is_the_envelope(auth_client):
    assert_error(auth_client.post("/api/v1/items/", {}), 405, "method_not_allowed")


@override_settings(DEBUG=True)
def test_a_disallowed_host_is_a_json_400_in_debug():
    response = quiet_client().get("/api/v1/items/", HTTP_HOST="evil.example")
    assert_error(response, 400, "bad_request")


@override_settings(DEBUG=True, DATA_UPLOAD_MAX_MEMORY_SIZE=10)
def test_an_oversized_body_is_a_json_413_in_debug(api_client):
    response = api_client.post(REGISTER, **raw_json('{"username": "a-long-name"}'))
    assert_error(response, 413, "payload_too_large")


@override_settings(DEBUG=True)
@pytest.mark.parametrize("url", ["/nope/", "/health/nope/"])
def test_pages_outside_the_api_keep_djangos_debug_pages(url):
    response = Client().get(url)

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


# --- details is always an object ---------------------------------------------------------


@pytest.mark.parametrize(
    ("details", "expected"),
    [
        (None, {}),
        ({}, {}),
        ({"a": 1}, {"a": 1}),
        (["first", "second"], {"non_field_errors": ["first", "second"]}),
        ("why", {"detail": "why"}),
        (3, {"detail": 3}),
    ],
)
def test_details_is_always_an_object(details, expected):
    assert as_details(details) == expected
    response = api_exception_handler(
        ApplicationError(details=details), {"request": None, "view": None}
    )
    assert response.data["error"]["details"] == expected


def test_a_validation_error_with_a_bare_message_names_no_field_but_is_an_object():
    response = api_exception_handler(ValidationError("nope"), {"request": None, "view": None})
    assert response.data["error"]["details"] == {"non_field_errors": ["nope"]}
