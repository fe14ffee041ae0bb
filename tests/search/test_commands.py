"""search_reindex, search_health and search_bench, and the health report monitoring reads."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from search_app import public
from search_app.backends.postgres import PostgresBackend
from search_app.contracts import BackendHealth
from search_app.models import SearchDocument, SearchOutbox
from search_app.services import indexing
from tests.factories import ItemFactory, ProviderFactory

pytestmark = pytest.mark.django_db

WORDS = [
    "privacy",
    "encryption",
    "compilers",
    "databases",
    "kernels",
    "browsers",
    "networks",
    "protocols",
    "startups",
    "funding",
    "markets",
    "climate",
    "energy",
    "batteries",
    "satellites",
    "rockets",
    "genomes",
    "vaccines",
    "proteins",
    "neurons",
    "memory",
    "storage",
    "latency",
    "throughput",
    "caching",
    "queues",
    "pipelines",
    "notebooks",
    "gardens",
    "recipes",
    "pastry",
    "coffee",
]


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def indexed(doc_type="items") -> set[int]:
    return set(SearchDocument.objects.filter(doc_type=doc_type).values_list("object_id", flat=True))


def test_reindex_rebuilds_every_document_from_the_catalog():
    items = ItemFactory.create_batch(3)
    stale = SearchDocument.objects.create(doc_type="items", object_id=999_999, title="gone")

    output = run("search_reindex", "--no-progress")

    assert indexed() == {i.pk for i in items}
    assert indexed("providers") == {i.provider_id for i in items}
    assert not SearchDocument.objects.filter(pk=stale.pk).exists()
    assert "postgres: 3 items, 3 providers" in output
    assert "Rebuilt postgres" in output


def test_reindex_with_progress_bars():
    ItemFactory()
    err = StringIO()

    call_command("search_reindex", stdout=StringIO(), stderr=err)

    assert indexed()


def test_changes_made_during_a_rebuild_are_queued_again(monkeypatch):
    doomed = ItemFactory()
    real = PostgresBackend.rebuild
    created = {}

    def rebuild(self, documents, *, progress=None):
        counts = real(self, documents, progress=progress)
        # Meanwhile, in another process: a new item and a deletion; the outbox rows of
        # those changes were already consumed by the indexer.
        created["item"] = ItemFactory(provider=doomed.provider)
        doomed.delete()
        SearchOutbox.objects.all().delete()
        return counts

    monkeypatch.setattr(PostgresBackend, "rebuild", rebuild)
    doomed_id = doomed.pk

    run("search_reindex", "--no-progress")

    queued = set(SearchOutbox.objects.values_list("doc_type", "object_id", "op"))
    assert ("items", created["item"].pk, "upsert") in queued
    assert ("items", doomed_id, "delete") in queued
    indexing.index_pending()
    assert indexed() == {created["item"].pk}


def test_health_reports_drift_outbox_and_last_indexing():
    ItemFactory.create_batch(2)
    indexing.index_pending()
    ItemFactory()  # not indexed yet

    output = run("search_health")

    assert "backend postgres: up" in output
    assert "items: 2 indexed / 3 in the catalog (drift -1)" in output
    assert "2 pending" in output  # the new item and its provider
    assert "last indexed: 20" in output


def test_health_as_json_and_strict_mode():
    ItemFactory()

    report = json.loads(run("search_health", "--json"))
    assert report["backend"] == "postgres"
    assert report["drift"] == {"items": -1, "providers": -1}
    assert report["outbox"]["pending"] == 2
    with pytest.raises(CommandError, match="drift"):
        run("search_health", "--strict")


def test_health_fails_when_the_backend_is_down(monkeypatch):
    def down(self):
        return BackendHealth(up=False, latency_ms=500.0, detail="connection refused")

    monkeypatch.setattr(PostgresBackend, "health", down)

    with pytest.raises(CommandError, match="down"):
        run("search_health")


def test_the_health_report_has_what_monitoring_reads():
    report = public.health()

    for figure in (
        "up",
        "latency_ms",
        "settings_drift",
        "drift",
        "oldest_pending_age_seconds",
        "last_indexed_at",
        "search_latency_p95_ms",
        "zero_result_rate",
    ):
        assert figure in report, figure
    assert set(report["outbox"]) == {"pending", "in_flight", "failed", "dead"}
    assert report["fallback"] is None  # PostgreSQL is the configured backend


def test_bench_runs_the_query_mix():
    provider = ProviderFactory()
    for n in range(60):
        words = " ".join(WORDS[(n + k) % len(WORDS)] for k in range(6))
        ItemFactory(provider=provider, title=words, summary=words, body=words)

    output = run("search_bench", "--reindex", "--rounds", "1")

    assert "reindex postgres" in output
    assert "prefix" in output and "typo" in output
    assert output.strip().splitlines()[-1].startswith("all")
