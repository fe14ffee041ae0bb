"""Indexing and the search service with SEARCH_BACKEND=meilisearch, on a real server:
both indexes written, the engine down (retries, fallback), rebuilds of both."""

from __future__ import annotations

import pytest
from django.test import override_settings

from reading_app.contracts import CatalogKind
from search_app import backends, public
from search_app.contracts import SearchQuery
from search_app.models import SearchDocument, SearchOutbox
from search_app.services import indexing
from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/search/"


@pytest.fixture
def engine(monkeypatch):
    """A scratch Meilisearch backend (own indexes) as the configured backend."""
    from tests.search.meilisearch_server import scratch_backend

    with scratch_backend() as backend, override_settings(SEARCH_BACKEND="meilisearch"):
        monkeypatch.setitem(backends._instances, "meilisearch", backend)
        yield backend


@pytest.fixture
def dead_engine(monkeypatch):
    pytest.importorskip("meilisearch")
    from search_app.backends.meilisearch import MeilisearchBackend

    down = MeilisearchBackend(url="http://127.0.0.1:9", timeout_s=0.2, index_prefix="down")
    with override_settings(SEARCH_BACKEND="meilisearch"):
        monkeypatch.setitem(backends._instances, "meilisearch", down)
        yield down


def found(backend, text: str) -> list[int]:
    return [hit.id for hit in backend.search(SearchQuery(text=text)).hits]


def test_changes_reach_the_engine_and_postgres(engine):
    item = ItemFactory(title="Observability for queues")

    run = indexing.index_pending()

    assert run.indexed == 2 and run.failed == 0
    assert found(engine, "observability") == [item.pk]
    assert SearchDocument.objects.filter(doc_type="items", object_id=item.pk).exists()
    item.delete()
    indexing.index_pending()
    assert found(engine, "observability") == []


def test_an_engine_that_is_down_retries_while_postgres_stays_current(dead_engine, api_client):
    item = ItemFactory(title="Observability for queues")

    run = indexing.index_pending()

    assert run.failed == 2 and run.indexed == 0
    row = SearchOutbox.objects.get(doc_type="items", object_id=item.pk)
    assert row.status == "failed" and "BackendUnavailable" in row.last_error
    # PostgreSQL was written first: the fallback already finds it.
    body = api_client.get(URL, {"q": "observability"}).json()
    assert body["degraded"] is True and body["backend"] == "postgres"
    assert [r["id"] for r in body["results"]] == [item.pk]
    report = public.health()
    assert report["up"] is False and report["fallback"]["up"] is True


def test_reindex_rebuilds_the_engine_and_postgres(engine):
    items = ItemFactory.create_batch(3, title="Compilers weekly")
    SearchOutbox.objects.all().delete()

    counts = indexing.reindex()

    assert counts["meilisearch"] == {"items": 3, "providers": 3}
    assert counts["postgres"] == {"items": 3, "providers": 3}
    assert sorted(found(engine, "compilers")) == sorted(i.pk for i in items)
    assert engine.health().documents[CatalogKind.ITEMS.value] == 3
    report = public.health()
    assert report["backend"] == "meilisearch" and report["drift"] == {"items": 0, "providers": 0}
