"""The benchmark's ceiling endpoint: absent unless INBO_BENCH_ENDPOINTS is on."""

from __future__ import annotations

import importlib

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import clear_url_caches

import inbo.urls
from inbo.api.bench import CEILING_CACHE_KEY, CEILING_VALUE

pytestmark = pytest.mark.django_db

CEILING = "/api/v1/_bench/ceiling/"


def _reload_urls() -> None:
    importlib.reload(inbo.urls)
    clear_url_caches()


@pytest.fixture
def bench_endpoints(settings):
    """The URLconf as the server builds it with INBO_BENCH_ENDPOINTS=true."""
    settings.INBO_BENCH_ENDPOINTS = True
    _reload_urls()
    yield
    settings.INBO_BENCH_ENDPOINTS = False
    _reload_urls()


def test_ceiling_is_not_routed_by_default(auth_client):
    response = auth_client.get(CEILING)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_ceiling_returns_the_cached_value(bench_endpoints, auth_client):
    first = auth_client.get(CEILING)
    cache.set(CEILING_CACHE_KEY, "from-redis", timeout=None)
    second = auth_client.get(CEILING)

    assert first.status_code == 200
    assert first.json() == {"value": CEILING_VALUE}
    assert second.json() == {"value": "from-redis"}


def test_ceiling_needs_a_token_like_home(bench_endpoints, api_client):
    response = api_client.get(CEILING)

    assert response.status_code == 401


def test_ceiling_answers_404_once_switched_off_even_if_still_routed(bench_endpoints, auth_client):
    with override_settings(INBO_BENCH_ENDPOINTS=False):
        response = auth_client.get(CEILING)

    assert response.status_code == 404


def test_ceiling_is_left_out_of_the_openapi_document(bench_endpoints, api_client):
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    assert not [p for p in response.json()["paths"] if "_bench" in p]
