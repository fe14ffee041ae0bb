"""The OpenAPI document and its interactive docs are served."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_schema_is_served_and_lists_the_api(api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in (
        "/api/v1/auth/register/",
        "/api/v1/auth/token/",
        "/api/v1/me/",
        "/api/v1/providers/",
        "/api/v1/providers/{slug}/",
        "/api/v1/items/",
        "/api/v1/items/{id}/",
        "/api/v1/subscriptions/",
        "/api/v1/subscriptions/{id}/",
        "/api/v1/reading/progress/{item_id}/",
        "/api/v1/reading/continue/",
        "/api/v1/reading/saves/",
        "/api/v1/reading/saves/{item_id}/",
    ):
        assert path in schema["paths"], path
    assert "Error" in schema["components"]["schemas"]


def test_schema_yaml_is_served(api_client):
    response = api_client.get("/api/schema/")
    assert response.status_code == 200
    assert b"openapi:" in response.content


def test_docs_are_served(api_client):
    response = api_client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
