"""HTTP caching of the catalog (inbo/api/http_cache.py): validators, conditional GETs, what a
shared cache may keep; and every other API response kept by no cache at all."""

from __future__ import annotations

import pytest
from django.utils.http import http_date

from reading_app import caches
from tests.factories import (
    ItemFactory,
    ProviderFactory,
    ReadingProgressFactory,
    SavedItemFactory,
    SubscriptionFactory,
)

pytestmark = pytest.mark.django_db

PROVIDERS = "/api/v1/providers/"
ITEMS = "/api/v1/items/"


def _vary(response) -> set[str]:
    return {v.strip().lower() for v in response.get("Vary", "").split(",") if v.strip()}


def test_an_anonymous_catalog_answer_is_public_with_validators(api_client):
    provider = ProviderFactory(slug="weekly")
    ItemFactory(provider=provider)
    for url in (PROVIDERS, f"{PROVIDERS}weekly/", ITEMS):
        response = api_client.get(url)
        assert response.status_code == 200
        assert response["Cache-Control"] == "public, max-age=60, stale-while-revalidate=300"
        assert response["ETag"].startswith('"') and len(response["ETag"]) == 34
        assert response["Last-Modified"]
        assert {"accept", "authorization", "cookie"} <= _vary(response)


def test_a_matching_etag_answers_304_with_no_body(api_client):
    ProviderFactory()
    first = api_client.get(PROVIDERS)
    again = api_client.get(PROVIDERS, HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == first["ETag"]
    assert again["Cache-Control"] == first["Cache-Control"]
    assert {"authorization", "cookie"} <= _vary(again)
    since = api_client.get(PROVIDERS, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"])
    assert since.status_code == 304
    stale = api_client.get(PROVIDERS, HTTP_IF_NONE_MATCH='"something-else"')
    assert stale.status_code == 200 and stale.content == first.content


def test_a_change_in_the_catalog_changes_the_answer_and_its_etag(api_client):
    provider = ProviderFactory(name="Before", slug="weekly")
    item = ItemFactory(provider=provider, title="First")
    detail = api_client.get(f"{ITEMS}{item.id}/")
    listing = api_client.get(ITEMS)

    item.title = "Second"
    item.save()
    changed = api_client.get(f"{ITEMS}{item.id}/", HTTP_IF_NONE_MATCH=detail["ETag"])
    assert changed.status_code == 200
    assert changed.json()["title"] == "Second"
    assert changed["ETag"] != detail["ETag"]

    ItemFactory(provider=provider)  # a new item: every list page changes
    grown = api_client.get(ITEMS, HTTP_IF_NONE_MATCH=listing["ETag"])
    assert grown.status_code == 200 and len(grown.json()["results"]) == 2


def test_a_repeated_page_is_served_from_the_cache_without_queries(
    api_client, django_assert_num_queries
):
    ItemFactory.create_batch(3)
    first = api_client.get(ITEMS, {"page_size": 2})
    with django_assert_num_queries(0):
        again = api_client.get(ITEMS, {"page_size": 2})
    assert again.content == first.content
    assert again["ETag"] == first["ETag"]
    other = api_client.get(ITEMS, {"page_size": 3})  # another URL, another entry
    assert len(other.json()["results"]) == 3


def test_a_signed_in_answer_is_private_but_still_validated(api_client, auth_client, user):
    provider = ProviderFactory(slug="weekly")
    item = ItemFactory(provider=provider)
    # What the reader has of their own must change nothing in a catalog answer.
    SubscriptionFactory(user=user, provider=provider)
    SavedItemFactory(user=user, item=item)
    ReadingProgressFactory(user=user, item=item)
    for url in (PROVIDERS, f"{PROVIDERS}weekly/", ITEMS, f"{ITEMS}{item.id}/"):
        anonymous = api_client.get(url)
        caches.CATALOG_PAGES.invalidate()  # built again, for the reader this time
        signed_in = auth_client.get(url)
        assert signed_in.status_code == 200
        assert signed_in["Cache-Control"] == "private, no-cache"
        assert {"authorization", "cookie"} <= _vary(signed_in)
        assert signed_in.content == anonymous.content  # the same bytes for everyone
        assert signed_in["ETag"] == anonymous["ETag"]
        revalidated = auth_client.get(url, HTTP_IF_NONE_MATCH=signed_in["ETag"])
        assert revalidated.status_code == 304
        assert revalidated["Cache-Control"] == "private, no-cache"


def test_errors_are_kept_by_no_cache(api_client):
    missing = api_client.get(f"{ITEMS}999999/")
    assert missing.status_code == 404
    assert missing["Cache-Control"] == "private, no-store"
    assert "ETag" not in missing
    bad_token = api_client.get(PROVIDERS, HTTP_AUTHORIZATION="Token nope")
    assert bad_token.status_code == 401
    assert bad_token["Cache-Control"] == "private, no-store"


def test_every_other_api_answer_is_kept_by_no_cache(api_client, auth_client):
    provider = ProviderFactory(slug="weekly")
    answers = [
        auth_client.get("/api/v1/me/"),
        auth_client.get("/api/v1/subscriptions/"),
        auth_client.post("/api/v1/subscriptions/", {"provider": "weekly"}, format="json"),
        api_client.get("/api/v1/search/", {"q": "weekly"}),  # public, but logged per search
        api_client.get("/api/v1/no-such-endpoint/"),
        api_client.post(PROVIDERS, {}, format="json"),  # a write to the catalog: refused
    ]
    for answer in answers:
        assert answer["Cache-Control"] == "private, no-store", answer.wsgi_request.path
        assert "ETag" not in answer
    assert provider.subscriptions.count() == 1


def test_if_modified_since_before_the_answer_was_built_gets_the_body(api_client):
    ProviderFactory()
    response = api_client.get(PROVIDERS, HTTP_IF_MODIFIED_SINCE=http_date(0))
    assert response.status_code == 200 and response.json()["results"]
