"""Every API error has one JSON shape and the right 4xx, whatever the client sends."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.test import RequestFactory
from rest_framework.test import APIClient

from inbo.api.errors import api_exception_handler, json_server_error
from inbo.errors import Conflict, ServiceUnavailable
from reading_app.models import ReadingProgress, Subscription
from tests.factories import ItemFactory, ProviderFactory, SubscriptionFactory
from tests.reading.utils import assert_error

pytestmark = pytest.mark.django_db

HUGE = "99999999999999999999"
PROGRESS = "/api/v1/reading/progress/{item}/"
SAVE = "/api/v1/reading/saves/{item}/"
SUB = "/api/v1/subscriptions/{sub}/"


def raw(text: str, content_type: str = "application/json") -> dict[str, Any]:
    return {"data": text, "content_type": content_type}


def body(data: Any) -> dict[str, Any]:
    return {"data": data, "format": "json"}


def cursor(query: str) -> str:
    return urlencode({"cursor": base64.b64encode(query.encode()).decode()})


V, NF, IC = "invalid", "not_found", "invalid_cursor"

# PUT /reading/progress/{item}/ — (id, request kwargs, status, code, fields named in details)
PROGRESS_BODIES = [
    ("malformed-json", raw("{bad"), 400, "parse_error", []),
    ("empty-body", raw(""), 400, V, ["progress"]),
    ("null-body", raw("null"), 400, V, ["non_field_errors"]),
    ("list-body", raw("[0.5]"), 400, V, ["non_field_errors"]),
    ("string-body", raw('"0.5"'), 400, V, ["non_field_errors"]),
    ("progress-missing", body({}), 400, V, ["progress"]),
    ("progress-null", body({"progress": None}), 400, V, ["progress"]),
    ("progress-string", body({"progress": "0.5"}), 400, V, ["progress"]),
    ("progress-word", body({"progress": "half"}), 400, V, ["progress"]),
    ("progress-bool", body({"progress": True}), 400, V, ["progress"]),
    ("progress-list", body({"progress": [0.5]}), 400, V, ["progress"]),
    ("progress-object", body({"progress": {}}), 400, V, ["progress"]),
    ("progress-above-1", body({"progress": 1.01}), 400, V, ["progress"]),
    ("progress-below-0", body({"progress": -0.1}), 400, V, ["progress"]),
    ("progress-nan-literal", raw('{"progress": NaN}'), 400, "parse_error", []),
    ("progress-inf-literal", raw('{"progress": Infinity}'), 400, "parse_error", []),
    ("progress-nan-string", body({"progress": "NaN"}), 400, V, ["progress"]),
    ("progress-inf-string", body({"progress": "-Infinity"}), 400, V, ["progress"]),
    ("progress-overflow", raw('{"progress": 1e400}'), 400, V, ["progress"]),
    ("progress-huge-int", raw('{"progress": 1%s}' % ("0" * 400)), 400, V, ["progress"]),
    ("position-negative", body({"progress": 0.5, "position": -1}), 400, V, ["position"]),
    ("position-too-big", body({"progress": 0.5, "position": 2**31}), 400, V, ["position"]),
    ("position-fraction", body({"progress": 0.5, "position": 1.5}), 400, V, ["position"]),
    ("position-word", body({"progress": 0.5, "position": "top"}), 400, V, ["position"]),
    ("both-bad", body({"progress": 2, "position": -1}), 400, V, ["progress", "position"]),
    ("text-plain", raw("progress=0.5", "text/plain"), 415, "unsupported_media_type", []),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "fields"),
    [case[1:] for case in PROGRESS_BODIES],
    ids=[case[0] for case in PROGRESS_BODIES],
)
def test_bad_progress_bodies_answer_4xx_in_the_error_shape(
    auth_client, kwargs, status, code, fields
):
    item = ItemFactory()

    error = assert_error(auth_client.put(PROGRESS.format(item=item.id), **kwargs), status, code)

    assert set(error["details"]) == set(fields)
    assert not ReadingProgress.objects.exists()


# POST /subscriptions/ — (id, request kwargs, status, code, fields named in details)
SUBSCRIBE_BODIES = [
    ("unknown-provider", body({"provider": "nope"}), 400, V, ["provider"]),
    ("not-a-slug", body({"provider": "not a slug!"}), 400, V, ["provider"]),
    ("too-long", body({"provider": "a" * 300}), 400, V, ["provider"]),
    ("missing", body({}), 400, V, ["provider"]),
    ("null-provider", body({"provider": None}), 400, V, ["provider"]),
    ("object-provider", body({"provider": {"slug": "real-provider"}}), 400, V, ["provider"]),
    ("list-body", raw('["real-provider"]'), 400, V, ["non_field_errors"]),
    ("null-body", raw("null"), 400, V, ["non_field_errors"]),
    ("malformed-json", raw('{"provider": '), 400, "parse_error", []),
    ("xml-body", raw("<provider/>", "application/xml"), 415, "unsupported_media_type", []),
]


@pytest.mark.parametrize(
    ("kwargs", "status", "code", "fields"),
    [case[1:] for case in SUBSCRIBE_BODIES],
    ids=[case[0] for case in SUBSCRIBE_BODIES],
)
def test_bad_subscribe_bodies_answer_4xx_in_the_error_shape(
    auth_client, kwargs, status, code, fields
):
    ProviderFactory(slug="real-provider")

    error = assert_error(auth_client.post("/api/v1/subscriptions/", **kwargs), status, code)

    assert set(error["details"]) == set(fields)
    assert not Subscription.objects.exists()


# Unknown, huge, negative and non-numeric ids: always 404, never a database error.
BAD_IDS = [
    ("put", PROGRESS.format(item=987654)),
    ("put", PROGRESS.format(item=HUGE)),
    ("get", PROGRESS.format(item=HUGE)),
    ("get", PROGRESS.format(item="abc")),
    ("put", PROGRESS.format(item="-1")),
    ("get", SAVE.format(item=HUGE)),
    ("put", SAVE.format(item=HUGE)),
    ("delete", SAVE.format(item=HUGE)),
    ("put", SAVE.format(item="abc")),
    ("get", "/api/v1/items/987654/"),
    ("get", f"/api/v1/items/{HUGE}/"),
    ("get", "/api/v1/items/abc/"),
    ("get", SUB.format(sub=987654)),
    ("get", SUB.format(sub=HUGE)),
    ("delete", SUB.format(sub=HUGE)),
    ("get", SUB.format(sub="abc")),
    ("get", "/api/v1/providers/nope/"),
    ("get", "/api/v1/providers/not%20a%20slug/"),
    ("get", "/api/v1/nope/"),
    ("get", "/api/v9/items/"),
]


@pytest.mark.parametrize(("method", "url"), BAD_IDS)
def test_unknown_or_malformed_ids_answer_404_in_the_error_shape(auth_client, method, url):
    ItemFactory()
    kwargs = body({"progress": 0.5}) if method == "put" else {}
    assert_error(getattr(auth_client, method)(url, **kwargs), 404, NF)


# Query strings: (url, status, code, fields named in details)
BAD_QUERIES = [
    ("/api/v1/items/?published_after=2026-13-45", 400, V, ["published_after"]),
    ("/api/v1/items/?published_after=yesterday", 400, V, ["published_after"]),
    ("/api/v1/items/?published_after=", 200, None, []),  # empty means no filter
    ("/api/v1/items/?published_before=2026-02-30", 400, V, ["published_before"]),
    ("/api/v1/items/?published_before=2026-11-01T25:00:00", 400, V, ["published_before"]),
    ("/api/v1/items/?language=%00", 400, V, ["language"]),
    ("/api/v1/providers/?category=%00", 400, V, ["category"]),
    ("/api/v1/subscriptions/?status=nope", 400, V, ["status"]),
    # Pagination (docs/API.md): bad numbers are 400 naming the field, bad cursors 400
    # invalid_cursor.
    ("/api/v1/providers/?page=abc", 400, V, ["page"]),
    (f"/api/v1/providers/?page={HUGE}", 400, V, ["page"]),
    ("/api/v1/items/?cursor=zzz", 400, IC, ["cursor"]),
    ("/api/v1/items/?" + cursor("p=abc"), 400, IC, ["cursor"]),
    ("/api/v1/reading/continue/?" + cursor("p=2026-13-45"), 400, IC, ["cursor"]),
    ("/api/v1/reading/saves/?" + cursor("r=1&p=%00"), 400, IC, ["cursor"]),
]


@pytest.mark.parametrize(("url", "status", "code", "fields"), BAD_QUERIES)
def test_bad_query_strings_answer_4xx_in_the_error_shape(auth_client, url, status, code, fields):
    ItemFactory()
    response = auth_client.get(url)
    if code is None:
        assert response.status_code == status
    else:
        error = assert_error(response, status, code)
        assert set(error["details"]) == set(fields)


# Methods an endpoint does not have.
WRONG_METHODS = [
    ("post", "/api/v1/items/"),
    ("delete", "/api/v1/providers/{provider}/"),
    ("delete", "/api/v1/reading/continue/"),
    ("post", SAVE),
    ("put", SUB),
    ("post", PROGRESS),
    ("get", "/api/v1/auth/token/"),
]


@pytest.mark.parametrize(("method", "url"), WRONG_METHODS)
def test_wrong_method_is_405_in_the_error_shape(auth_client, user, method, url):
    item = ItemFactory()
    sub = SubscriptionFactory(user=user)
    url = url.format(item=item.id, sub=sub.id, provider=sub.provider.slug)
    kwargs = {} if method == "get" else body({})
    assert_error(getattr(auth_client, method)(url, **kwargs), 405, "method_not_allowed")


def test_validation_message_names_the_fields(auth_client):
    item = ItemFactory()
    error = assert_error(
        auth_client.put(f"/api/v1/reading/progress/{item.id}/", {"progress": "x"}),
        400,
        "invalid",
        ["progress"],
    )
    assert "progress" in error["message"]


def test_unacceptable_accept_header_is_406(auth_client):
    assert_error(auth_client.get("/api/v1/items/", HTTP_ACCEPT="text/csv"), 406, "not_acceptable")


# --- Authentication ------------------------------------------------------------------------

PROTECTED = [
    ("get", "/api/v1/me/"),
    ("get", "/api/v1/subscriptions/"),
    ("post", "/api/v1/subscriptions/"),
    ("get", "/api/v1/subscriptions/1/"),
    ("delete", "/api/v1/subscriptions/1/"),
    ("get", "/api/v1/reading/progress/1/"),
    ("put", "/api/v1/reading/progress/1/"),
    ("get", "/api/v1/reading/continue/"),
    ("get", "/api/v1/reading/saves/"),
    ("get", "/api/v1/reading/saves/1/"),
    ("put", "/api/v1/reading/saves/1/"),
    ("delete", "/api/v1/reading/saves/1/"),
]


@pytest.mark.parametrize(("method", "url"), PROTECTED)
def test_anonymous_access_to_personal_endpoints_is_401(api_client, method, url):
    response = getattr(api_client, method)(url)
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize(("method", "url"), PROTECTED)
def test_an_invalid_token_is_401(method, url):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(getattr(client, method)(url), 401, "authentication_failed")


def test_session_write_without_csrf_token_is_403(user):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    item = ItemFactory()
    response = client.put(f"/api/v1/reading/progress/{item.id}/", {"progress": 0.5})
    assert_error(response, 403, "permission_denied")


def test_throttled_sign_in_is_429_with_retry_after(api_client, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "auth": "1/min"}
    credentials = {"username": "nobody", "password": "wrong-password"}
    assert api_client.post("/api/v1/auth/token/", credentials).status_code == 400

    response = api_client.post("/api/v1/auth/token/", credentials)

    error = assert_error(response, 429, "throttled")
    assert error["details"]["retry_after_seconds"] > 0
    assert "Retry-After" in response


# --- The exception handler itself --------------------------------------------------------------


def _handle(exc: Exception):
    request = RequestFactory().get("/api/v1/anything/")
    return api_exception_handler(exc, {"request": request, "view": None})


@pytest.mark.parametrize(
    ("exc", "status", "code"),
    [
        (Conflict(details={"item_id": 1}), 409, "conflict"),
        (ServiceUnavailable(), 503, "service_unavailable"),
    ],
)
def test_application_errors_map_to_their_status_and_code(exc, status, code):
    response = _handle(exc)
    assert response.status_code == status
    assert response.data == {
        "error": {"code": code, "message": exc.message, "details": exc.details}
    }


def test_django_validation_errors_become_400_naming_the_fields():
    response = _handle(DjangoValidationError({"parent": ["Too deep."]}))
    assert response.status_code == 400
    assert response.data["error"]["code"] == "invalid"
    assert response.data["error"]["details"] == {"parent": ["Too deep."]}


def test_unexpected_exceptions_are_not_swallowed():
    assert _handle(RuntimeError("bug")) is None


def test_server_error_handler_uses_the_shape_without_internals():
    response = json_server_error(RequestFactory().get("/api/v1/items/"))
    assert response.status_code == 500
    assert json.loads(response.content)["error"]["code"] == "server_error"
