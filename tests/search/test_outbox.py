"""Catalog changes reach the outbox in the change's transaction, coalesce, and are indexed
with retries, backoff and a dead letter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from inbo import keys
from inbo import redis as inbo_redis
from reading_app import public as reading
from reading_app.contracts import ItemIn, ProviderIn
from reading_app.models import Item
from search_app.backends.postgres import PostgresBackend
from search_app.models import SearchDocument, SearchOutbox
from search_app.services import indexing, outbox
from tests.factories import CategoryFactory, ItemFactory, ProviderFactory

pytestmark = pytest.mark.django_db


def rows(doc_type="items") -> dict[int, SearchOutbox]:
    return {r.object_id: r for r in SearchOutbox.objects.filter(doc_type=doc_type)}


@pytest.fixture
def recorder():
    """Every notification reading_app sends, in order."""
    calls: list[tuple[str, list[int], str]] = []

    def record(kind, ids, op):
        calls.append((kind, list(ids), op))

    reading.subscribe_catalog_changes(record)
    yield calls
    reading.unsubscribe_catalog_changes(record)


def indexed(doc_type="items") -> set[int]:
    return set(SearchDocument.objects.filter(doc_type=doc_type).values_list("object_id", flat=True))


def make_due() -> None:
    SearchOutbox.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))


# --- Capture ---------------------------------------------------------------------------


def test_saving_an_item_or_provider_enqueues_an_upsert():
    item = ItemFactory()

    assert rows()[item.pk].op == "upsert"
    assert rows()[item.pk].status == "pending"
    assert rows("providers")[item.provider_id].op == "upsert"


def test_repeated_changes_coalesce_into_one_row_with_the_latest_op():
    item = ItemFactory()
    item.title = "Edited"
    item.save()
    item.save()
    assert SearchOutbox.objects.filter(doc_type="items", object_id=item.pk).count() == 1

    pk = item.pk
    item.delete()

    (row,) = SearchOutbox.objects.filter(doc_type="items", object_id=pk)
    assert row.op == "delete"


def test_a_change_rolled_back_leaves_no_outbox_row():
    with pytest.raises(RuntimeError), transaction.atomic():
        ItemFactory()
        raise RuntimeError("the change fails")

    assert not SearchOutbox.objects.exists()


def test_deleting_a_provider_announces_its_items_in_one_call(recorder):
    provider = ProviderFactory()
    items = ItemFactory.create_batch(3, provider=provider)
    recorder.clear()
    provider_id = provider.pk

    provider.delete()

    assert ("items", sorted(i.pk for i in items), "delete") in recorder
    assert ("providers", [provider_id], "delete") in recorder
    assert len([c for c in recorder if c[0] == "items"]) == 1
    assert all(rows()[i.pk].op == "delete" for i in items)


def test_category_links_from_either_side_enqueue_the_documents(recorder):
    tech = CategoryFactory(slug="tech")
    first, second = ItemFactory.create_batch(2)
    provider = ProviderFactory()
    recorder.clear()

    first.categories.add(tech)
    tech.items.add(second)
    provider.categories.add(tech)
    assert ("items", [first.pk], "upsert") in recorder
    assert ("items", [second.pk], "upsert") in recorder
    assert ("providers", [provider.pk], "upsert") in recorder

    recorder.clear()
    tech.items.clear()
    assert ("items", sorted([first.pk, second.pk]), "upsert") in recorder


def test_renaming_a_category_slug_enqueues_documents_of_it_and_its_subcategories(recorder):
    tech = CategoryFactory(slug="tech")
    ai = CategoryFactory(slug="ai", parent=tech)
    item = ItemFactory(categories=[ai])
    recorder.clear()

    tech.name = "Technology"
    tech.save()
    assert recorder == []  # the name is not in documents

    tech.slug = "technology"
    tech.save()
    assert ("items", [item.pk], "upsert") in recorder


def test_bulk_imports_enqueue_what_they_create():
    CategoryFactory(slug="tech")
    providers = reading.providers_create_missing(
        [ProviderIn(external_id="p1", slug="p-one", name="P One", category_slugs=("tech",))]
    )
    items = reading.items_create_missing(
        [
            ItemIn(
                external_id=f"i{n}",
                provider_external_id="p1",
                title=f"Issue {n}",
                published_at=datetime(2024, 1, n, tzinfo=UTC),
                url="https://example.com/",
            )
            for n in (1, 2)
        ]
    )

    assert set(rows()) == set(items.ids.values())
    assert set(rows("providers")) == set(providers.ids.values())
    SearchOutbox.objects.all().delete()
    reading.items_create_missing([ItemIn("i1", "p1", "Issue 1", datetime(2024, 1, 1, tzinfo=UTC))])
    assert not SearchOutbox.objects.exists()  # nothing new, nothing to index


# --- Indexing --------------------------------------------------------------------------


def test_pending_changes_are_indexed_and_leave_the_outbox():
    tech = CategoryFactory(slug="tech")
    ai = CategoryFactory(slug="ai", parent=tech)
    item = ItemFactory(title="Transformers explained", categories=[ai])

    run = indexing.index_pending()

    assert run.indexed == 2 and run.failed == 0
    assert not SearchOutbox.objects.exists()
    doc = SearchDocument.objects.get(doc_type="items", object_id=item.pk)
    assert doc.title == "Transformers explained"
    assert doc.categories == ["ai", "tech"]  # a subcategory's parent is searchable too
    assert doc.provider_name == item.provider.name
    assert indexed("providers") == {item.provider_id}
    assert float(inbo_redis.state().get(keys.search_last_indexed())) > 0


def test_deleted_or_unpublished_items_leave_the_index():
    kept, unpublished, deleted = ItemFactory.create_batch(3)
    indexing.index_pending()
    assert indexed() == {kept.pk, unpublished.pk, deleted.pk}

    unpublished.status = Item.Status.UNAVAILABLE
    unpublished.save()
    deleted.delete()
    indexing.index_pending()

    assert indexed() == {kept.pk}


def test_running_twice_is_harmless():
    item = ItemFactory()
    indexing.index_pending()
    second = indexing.index_pending()

    assert second.indexed == 0
    assert indexed() == {item.pk}


def test_the_task_indexes_pending_changes():
    from search_app.tasks import index_pending

    item = ItemFactory()
    result = index_pending.apply().get()

    assert result["indexed"] == 2
    assert item.pk in indexed()


def test_a_change_made_while_its_document_is_written_is_not_lost():
    item = ItemFactory()
    claimed = outbox.claim(10)
    item.title = "Changed meanwhile"
    item.save()  # the in-flight row stays; a new pending row records this change

    assert outbox.claim(10) == []  # not while the earlier write is in flight
    outbox.finish([c.id for c in claimed])

    (row,) = SearchOutbox.objects.filter(doc_type="items")
    assert row.status == "pending"


def test_provider_rename_reindexes_its_items():
    provider = ProviderFactory(name="Old Name")
    item = ItemFactory(provider=provider)
    indexing.index_pending()

    provider.name = "New Name"
    provider.save()
    indexing.index_pending()  # the provider, which enqueues its items
    indexing.index_pending()

    doc = SearchDocument.objects.get(doc_type="items", object_id=item.pk)
    assert doc.provider_name == "New Name"


# --- Retries, backoff, dead letters ----------------------------------------------------


def test_backoff_doubles_with_jitter_and_is_capped():
    with override_settings(SEARCH_INDEX_BACKOFF_SECONDS=10.0):
        for attempts, full in ((1, 10), (2, 20), (3, 40), (20, outbox.BACKOFF_CAP_SECONDS)):
            delays = {outbox.backoff_seconds(attempts) for _ in range(50)}
            assert all(full / 2 <= d <= full for d in delays)
            assert len(delays) > 1  # jittered


ENGINE_SAID_NO = RuntimeError("engine said no")


def _failing_upsert(monkeypatch, predicate=lambda docs: True, exc=ENGINE_SAID_NO):
    calls = []
    real = PostgresBackend.upsert

    def upsert(self, documents):
        calls.append([d.id for d in documents])
        if predicate(documents):
            raise exc
        return real(self, documents)

    monkeypatch.setattr(PostgresBackend, "upsert", upsert)
    return calls


@override_settings(SEARCH_INDEX_MAX_ATTEMPTS=3, SEARCH_INDEX_BACKOFF_SECONDS=60.0)
def test_failed_writes_retry_with_backoff_then_become_dead_letters(monkeypatch):
    _failing_upsert(monkeypatch)
    item = ItemFactory()
    SearchOutbox.objects.filter(doc_type="providers").delete()

    before = timezone.now()
    run = indexing.index_pending()
    row = rows()[item.pk]
    assert (run.failed, run.dead) == (1, 0)
    assert row.status == "failed" and row.attempts == 1
    assert "engine said no" in row.last_error
    assert (
        before + timedelta(seconds=30)
        <= row.next_attempt_at
        <= timezone.now() + timedelta(seconds=60)
    )
    assert indexing.index_pending().failed == 0  # not due yet

    make_due()
    indexing.index_pending()
    assert rows()[item.pk].attempts == 2
    make_due()
    run = indexing.index_pending()

    row = rows()[item.pk]
    assert run.dead == 1
    assert row.status == "dead" and row.attempts == 3
    make_due()
    assert indexing.index_pending().batches == 0  # dead rows are not retried by themselves


def test_one_bad_document_does_not_hold_back_the_batch(monkeypatch):
    calls = _failing_upsert(monkeypatch, lambda docs: any(d.fields["title"] == "bad" for d in docs))
    good = ItemFactory(title="good")
    bad = ItemFactory(title="bad")
    SearchOutbox.objects.filter(doc_type="providers").delete()

    run = indexing.index_pending()

    assert (run.indexed, run.failed) == (1, 1)
    assert indexed() == {good.pk}
    assert rows()[bad.pk].status == "failed"
    assert len(calls) == 3  # the batch, then each document alone


def test_an_engine_that_is_down_fails_the_batch_without_splitting_it(monkeypatch):
    from search_app.backends.base import BackendUnavailable

    calls = _failing_upsert(monkeypatch, exc=BackendUnavailable("down"))
    ItemFactory.create_batch(3)
    SearchOutbox.objects.filter(doc_type="providers").delete()

    run = indexing.index_pending()

    assert run.failed == 3
    assert len(calls) == 1


def test_a_new_change_to_a_failed_document_keeps_one_row(monkeypatch):
    _failing_upsert(monkeypatch)
    item = ItemFactory()
    indexing.index_pending()

    item.save()

    (row,) = SearchOutbox.objects.filter(doc_type="items", object_id=item.pk)
    assert row.status == "failed" and row.attempts == 1


def test_a_stale_claim_counts_as_a_failed_try():
    item = ItemFactory()
    outbox.claim(10)
    SearchOutbox.objects.update(claimed_at=timezone.now() - outbox.CLAIM_TIMEOUT * 2)

    indexing.index_pending()

    row = rows()[item.pk]
    assert row.status == "failed" and row.attempts == 1
    assert "claim expired" in row.last_error


@override_settings(SEARCH_INDEX_MAX_ATTEMPTS=1)
def test_admin_retry_action_gives_dead_letters_fresh_tries(monkeypatch, admin_client):
    _failing_upsert(monkeypatch)
    item = ItemFactory()
    indexing.index_pending()
    dead = SearchOutbox.objects.filter(status="dead")
    assert dead.count() == 2
    monkeypatch.undo()

    response = admin_client.post(
        "/admin/search_app/searchoutbox/",
        {"action": "retry", "_selected_action": [r.pk for r in dead]},
    )

    assert response.status_code == 302
    assert set(SearchOutbox.objects.values_list("status", "attempts")) == {("pending", 0)}
    indexing.index_pending()
    assert indexed() == {item.pk}
    assert not SearchOutbox.objects.exists()


def test_retrying_a_dead_letter_that_a_newer_change_covers_drops_it(monkeypatch):
    _failing_upsert(monkeypatch)
    item = ItemFactory()
    with override_settings(SEARCH_INDEX_MAX_ATTEMPTS=1):
        indexing.index_pending()
    item.save()  # a new, live row for the same document

    dead = SearchOutbox.objects.get(doc_type="items", status="dead")
    assert outbox.retry([dead.pk]) == 0
    assert list(SearchOutbox.objects.filter(doc_type="items").values_list("status")) == [
        ("pending",)
    ]


def test_stats_report_rows_by_status_and_the_oldest_change():
    ItemFactory()
    SearchOutbox.objects.update(created_at=timezone.now() - timedelta(minutes=5))

    stats = outbox.stats()

    assert stats["by_status"] == {"pending": 2, "in_flight": 0, "failed": 0, "dead": 0}
    assert 299 < stats["oldest_pending_age_seconds"] < 400


def test_a_failed_row_colliding_with_a_newer_change_gives_way(monkeypatch):
    item = ItemFactory()
    SearchOutbox.objects.filter(doc_type="providers").delete()
    claimed = outbox.claim(10)
    # The newer change lands after the sibling check: simulate by hiding it from the check.
    monkeypatch.setattr(outbox, "_with_newer_rows", lambda ids: set())
    item.save()

    outbox.fail(claimed, "RuntimeError: boom")

    (row,) = SearchOutbox.objects.filter(doc_type="items", object_id=item.pk)
    assert (row.status, row.attempts) == ("pending", 0)
