"""Request bodies: each value must arrive as the JSON type its schema names.

DRF's fields read leniently (a number becomes text, ``"12"`` and ``12.0`` become integers,
``false`` becomes the zero UUID); the fuzzer created an account named
``4.048659489994232e+16``. These bodies are refused with a 400 naming the field.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth import get_user_model

from tests.factories import ItemFactory
from tests.reading.utils import assert_error

pytestmark = pytest.mark.django_db

REGISTER = "/api/v1/auth/register/"
TOKEN = "/api/v1/auth/token/"


@pytest.mark.parametrize(
    ("field", "value"),
    [("username", 4.048659489994232e16), ("username", 12345), ("email", 7), ("password", 1e20)],
)
def test_sign_up_takes_strings_only(api_client, field, value):
    body = {"username": "reader", "email": "reader@example.com", "password": "a long pass 42"}
    body[field] = value

    assert_error(api_client.post(REGISTER, body, format="json"), 400, "invalid", [field])
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize("field", ["username", "password"])
def test_token_takes_strings_only(api_client, user, field):
    body = {"username": user.username, "password": "x" * 8, field: 123456789}

    assert_error(api_client.post(TOKEN, body, format="json"), 400, "invalid", [field])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("item_id", "12"),
        ("item_id", 12.0),
        ("item_id", True),
        ("type", 1),
        ("section", 0),
        ("position", "3"),
        ("dwell_ms", 1.5),
    ],
)
def test_interactions_take_the_declared_json_types(auth_client, field, value):
    item = ItemFactory()
    interaction = {"event_id": str(uuid.uuid4()), "item_id": item.id, "type": "click"}
    interaction[field] = value

    response = auth_client.post(
        "/api/v1/experience/interactions/", {"interactions": [interaction]}, format="json"
    )

    error = assert_error(response, 400, "invalid", ["interactions"])
    assert field in str(error["details"])


def test_interests_take_slugs_as_strings_only(auth_client):
    response = auth_client.put("/api/v1/me/interests/", {"categories": [1]}, format="json")

    assert_error(response, 400, "invalid", ["categories"])


def test_a_subscription_names_its_provider_as_a_string(auth_client):
    response = auth_client.post("/api/v1/subscriptions/", {"provider": 42}, format="json")

    assert_error(response, 400, "invalid", ["provider"])


@pytest.mark.parametrize(
    ("field", "value"), [("search_id", 0), ("search_id", False), ("id", "1"), ("position", 1.0)]
)
def test_a_click_takes_the_declared_json_types(api_client, field, value):
    body = {"search_id": str(uuid.uuid4()), "id": 1, "position": 1, field: value}

    response = api_client.post("/api/v1/search/clicks/", body, format="json")

    assert_error(response, 400, "invalid", [field])


def test_reading_position_is_a_json_integer(auth_client):
    item = ItemFactory()

    response = auth_client.put(
        f"/api/v1/reading/progress/{item.id}/", {"progress": 0.5, "position": "10"}, format="json"
    )

    assert_error(response, 400, "invalid", ["position"])
