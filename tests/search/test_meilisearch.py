"""The Meilisearch backend against a real server: settings applied once and swapped in on
change, drift, writes reconciled by task status, and an engine that is down or slow.

Behaviour shared with PostgreSQL (prefix, typos, filters, paging, …) is in the contract
suite; these are the Meilisearch-only guarantees.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from inbo import breakers
from reading_app.contracts import CatalogKind
from search_app import backends
from search_app.backends import meilisearch_index
from search_app.backends.base import BackendUnavailable
from search_app.backends.meilisearch import (
    HIGHLIGHT_POST,
    HIGHLIGHT_PRE,
    INDEX_SETTINGS,
    IndexingFailed,
    IndexingUnknown,
    IndexMissing,
    MeilisearchBackend,
    payload,
    quote,
)
from search_app.contracts import Document, SearchQuery, SearchResult, Sort
from search_app.models import SearchLog
from search_app.services import search as search_service
from tests.search.meilisearch_server import scratch_backend


def item(doc_id: int, title: str, **fields) -> Document:
    base = {
        "title": title,
        "provider": "Tech Weekly",
        "provider_slug": "tech-weekly",
        "summary": f"All about {title}",
        "body": "",
        "categories": ["technology"],
        "language": "en",
        "published_at": datetime(2024, 1, doc_id % 28 + 1, tzinfo=UTC),
    }
    return Document(CatalogKind.ITEMS, doc_id, {**base, **fields})


CORPUS = [
    item(1, "Python packaging", categories=["technology", "python"]),
    item(2, "Rust ownership explained", body="borrowing lifetimes quantum"),
    item(
        3,
        "Café culture in Lisbon",
        provider="Food Letters",
        provider_slug="food-letters",
        categories=["food"],
        language="pt",
    ),
    item(4, "Python typing tips", summary="<script>alert(1)</script> typing"),
    item(
        5,
        "Weekly market notes",
        provider="Money Mail",
        provider_slug="money-mail",
        categories=["finance"],
    ),
]


def corpus(doc_type: CatalogKind) -> list[Document]:
    return CORPUS if doc_type == CatalogKind.ITEMS else []


def ids(result) -> list[int]:
    return [hit.id for hit in result.hits]


@pytest.fixture
def backend():
    with scratch_backend() as scratch:
        yield scratch


@pytest.fixture
def fresh():
    """A backend whose indexes do not exist yet (a new deployment)."""
    with scratch_backend(create=False) as scratch:
        yield scratch


@pytest.fixture
def filled(backend):
    backend.upsert(CORPUS)
    return backend


def settings_updates(backend: MeilisearchBackend, doc_type: CatalogKind) -> int:
    tasks = backend.client.get_tasks(
        {"indexUids": backend.index_uid(doc_type), "types": "settingsUpdate", "limit": 100}
    )
    return len(tasks.results)


# --- pure helpers --------------------------------------------------------------------
def test_quote_escapes_what_could_close_the_string():
    assert quote('a" OR language = "en') == '"a\\" OR language = \\"en"'
    assert quote("back\\slash") == '"back\\\\slash"'


def test_payload_sends_dates_as_timestamps_and_the_id_as_primary_key():
    body = payload(item(7, "x", id=99, published_at=datetime(2024, 1, 2, tzinfo=UTC)))
    assert body["id"] == 7
    assert body["published_at"] == 1704153600


# --- settings: applied once, changed only by a swap ----------------------------------
def test_first_write_creates_indexes_with_declared_settings_only_once(fresh):
    backend = fresh
    backend.upsert(CORPUS[:2])
    again = MeilisearchBackend(index_prefix=backend.index_prefix)  # e.g. another worker
    again.upsert(CORPUS[2:])
    again.ensure_indexes()

    assert settings_updates(backend, CatalogKind.ITEMS) == 1
    assert again.settings_drift() == {CatalogKind.ITEMS: False, CatalogKind.PROVIDERS: False}
    live = backend.client.index(backend.index_uid(CatalogKind.ITEMS)).get_settings()
    assert live["searchableAttributes"] == ["title", "provider", "summary", "body"]
    assert backend.client.get_index(backend.index_uid(CatalogKind.ITEMS)).primary_key == "id"


def test_changed_settings_are_drift_until_a_rebuild_swaps_them_in(filled):
    changed = {t: dict(s) for t, s in INDEX_SETTINGS.items()}
    changed[CatalogKind.ITEMS]["searchableAttributes"] = ["title", "provider", "summary"]
    new_code = MeilisearchBackend(index_prefix=filled.index_prefix, index_settings=changed)

    new_code.ensure_indexes()  # a boot or a write never reconfigures a live index
    assert new_code.settings_drift()[CatalogKind.ITEMS] is True
    assert new_code.health().settings_drift is True
    assert ids(new_code.search(SearchQuery("quantum"))) == [2]  # body still searchable

    seen_while_building = []

    def progress(doc_type, done, total):
        # Searchers keep the old index until the swap.
        seen_while_building.append(ids(new_code.search(SearchQuery("quantum"))))

    assert new_code.apply_settings_if_changed(corpus, progress=progress) is True

    assert seen_while_building[0] == [2]
    assert new_code.settings_drift() == {CatalogKind.ITEMS: False, CatalogKind.PROVIDERS: False}
    assert new_code.search(SearchQuery("quantum")).hits == []  # body no longer searchable
    assert ids(new_code.search(SearchQuery("ownership"))) == [2]
    uids = [i["uid"] for i in new_code.client.http.get("indexes?limit=1000")["results"]]
    assert not [
        uid
        for uid in uids
        if uid.startswith(filled.index_prefix) and meilisearch_index.BUILD_MARK in uid
    ]
    assert new_code.apply_settings_if_changed(corpus) is False  # nothing to do twice


def test_settings_changed_behind_our_back_are_reported_as_drift(filled):
    uid = filled.index_uid(CatalogKind.ITEMS)
    task = filled.client.index(uid).update_settings({"searchableAttributes": ["title"]})
    filled.wait_for([task.task_uid], timeout_s=30)

    health = filled.health()
    assert health.settings_drift is True
    assert uid in health.detail


def test_rebuild_of_a_fresh_deployment_creates_the_live_indexes(fresh):
    assert fresh.rebuild(corpus) == {"items": len(CORPUS), "providers": 0}

    assert fresh.search(SearchQuery("packaging")).total == 1
    health = fresh.health()
    assert health.documents == {"items": len(CORPUS), "providers": 0}
    assert health.settings_drift is False


class LazyDocs(Sequence):
    """Like the catalog's lazy sequence: len() is cheap, slices are read when iterated."""

    def __init__(self, docs, reads):
        self.docs, self.reads = docs, reads

    def __len__(self):
        return len(self.docs)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return LazyDocs(self.docs[index], self.reads)
        document = self.docs[index]
        self.reads.append(document.id)
        return document


def test_rebuild_streams_batches_and_reports_progress(backend, monkeypatch):
    monkeypatch.setattr(meilisearch_index, "BATCH_SIZE", 2)
    reads: list[int] = []
    calls = []

    counts = backend.rebuild(
        lambda doc_type: LazyDocs(corpus(doc_type), reads),
        progress=lambda doc_type, done, total: calls.append((doc_type, done, total)),
    )

    assert counts == {"items": 5, "providers": 0}
    assert calls == [
        (CatalogKind.ITEMS, 2, 5),
        (CatalogKind.ITEMS, 4, 5),
        (CatalogKind.ITEMS, 5, 5),
    ]
    assert sorted(reads) == [1, 2, 3, 4, 5]  # every document read once, through slices
    assert backend.search(SearchQuery("")).total == 5


# --- search ----------------------------------------------------------------------------
def test_filters_sort_facets_and_paging(filled):
    python = filled.search(SearchQuery("python", category="python"))
    assert ids(python) == [1]

    newest = filled.search(SearchQuery("", provider="tech-weekly", sort=Sort.NEWEST, limit=2))
    assert ids(newest) == [4, 2]
    assert newest.total == 3
    assert filled.search(SearchQuery("", provider="tech-weekly", offset=2, limit=2)).hits[0].id == 1

    dated = SearchQuery(
        "", date_from=datetime(2024, 1, 3, tzinfo=UTC), date_to=datetime(2024, 1, 5, tzinfo=UTC)
    )
    assert sorted(ids(filled.search(dated))) == [2, 3]
    assert ids(filled.search(SearchQuery("", language="pt"))) == [3]

    facets = filled.search(SearchQuery("")).facets
    assert facets["category"] == {"technology": 3, "python": 1, "food": 1, "finance": 1}
    assert facets["provider"] == {"tech-weekly": 3, "food-letters": 1, "money-mail": 1}
    assert facets["language"] == {"en": 4, "pt": 1}


def test_providers_without_dates_page_newest_id_first_and_count_without_hits(backend):
    providers = [
        Document(
            CatalogKind.PROVIDERS,
            pk,
            {
                "title": f"Letter {pk}",
                "provider": f"Letter {pk}",
                "provider_slug": f"letter-{pk}",
                "summary": "weekly essays",
                "body": "",
                "categories": ["culture"],
                "language": "en",
                "published_at": None,
            },
        )
        for pk in (3, 1, 2)
    ]
    backend.upsert(providers)

    listed = backend.search(SearchQuery("", doc_type=CatalogKind.PROVIDERS))
    assert ids(listed) == [3, 2, 1]
    assert set(listed.facets) == {"category", "language"}
    assert ids(backend.search(SearchQuery("essays", doc_type=CatalogKind.PROVIDERS))) == [3, 2, 1]
    counted = backend.search(SearchQuery("essays", doc_type=CatalogKind.PROVIDERS, limit=0))
    assert (counted.hits, counted.total) == ([], 3)


def test_filter_values_cannot_inject_filter_syntax(filled):
    sneaky = 'python" OR language = "en'
    assert filled.search(SearchQuery("", category=sneaky)).total == 0
    assert filled.search(SearchQuery("", provider='x\\" OR id > 0 OR "')).total == 0


def test_typos_accents_and_highlights_are_escaped_html(filled):
    typo = filled.search(SearchQuery("pyhton typing"))
    assert ids(typo)[0] == 4
    assert typo.corrected_query is None  # Meilisearch corrects silently

    cafe = filled.search(SearchQuery("cafe"))
    assert ids(cafe) == [3]
    title = cafe.hits[0].highlights["title"]
    assert title == f"{HIGHLIGHT_PRE}Café{HIGHLIGHT_POST} culture in Lisbon"

    summary = typo.hits[0].highlights["summary"]
    assert "<script>" not in summary
    assert "&lt;script&gt;" in summary and f"{HIGHLIGHT_PRE}typing{HIGHLIGHT_POST}" in summary


def test_deleted_documents_disappear_and_missing_ids_are_fine(filled):
    filled.delete(CatalogKind.ITEMS, [1, 4, 12345])
    assert filled.search(SearchQuery("python")).hits == []
    assert filled.health().documents["items"] == len(CORPUS) - 2


def test_a_query_of_any_shape_never_breaks_search(filled):
    for text in ["x" * 1000, "\u202e\u0000\ud7ff 🎉 ∑", '"unclosed', "AND OR NOT", "-"]:
        assert filled.search(SearchQuery(text)).total >= 0


# --- writes reconciled by task status -----------------------------------------------
def test_a_rejected_document_is_a_failed_task_not_a_success(backend):
    invalid = Document(CatalogKind.ITEMS, 2**70, {"title": "id beyond Meilisearch's range"})

    uids = backend.submit([invalid])
    assert backend.wait_for(uids, timeout_s=30) == {uids[0]: "failed"}
    assert "id" in backend.task_errors(uids)[uids[0]]

    with pytest.raises(IndexingFailed) as failed:
        backend.upsert([invalid])
    assert failed.value.task_uids


def test_one_task_per_document_isolates_the_bad_one(backend):
    good, bad = CORPUS[0], Document(CatalogKind.ITEMS, 2**70, {"title": "bad"})

    uids = backend.submit_each([good, bad, CORPUS[1]])
    statuses = backend.wait_for(list(uids.values()), timeout_s=30)

    assert {doc_id: statuses[uid] for doc_id, uid in uids.items()} == {
        1: "succeeded",
        2**70: "failed",
        2: "succeeded",
    }


def test_a_task_unfinished_at_the_deadline_is_unknown(backend):
    backend.ensure_indexes()
    many = [item(i, f"title {i}", body="word " * 200) for i in range(1, 3001)]

    uids = backend.submit(many)
    assert backend.wait_for(uids, timeout_s=0) == {uids[0]: "unknown"}
    assert backend.task_statuses([10**9]) == {10**9: "unknown"}

    impatient = MeilisearchBackend(index_prefix=backend.index_prefix, task_timeout_s=0)
    with pytest.raises(IndexingUnknown) as unknown:
        impatient.upsert(many[:100])
    assert isinstance(unknown.value, BackendUnavailable)  # retried as a whole, reconciled
    assert unknown.value.task_uids
    assert backend.wait_for(uids, timeout_s=60) == {uids[0]: "succeeded"}


# --- an engine that is down, slow or misconfigured ----------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_down_is_unavailable_quickly():
    down = MeilisearchBackend(url=f"http://127.0.0.1:{_closed_port()}", index_prefix="nope")
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        down.search(SearchQuery("python"))
    with pytest.raises(BackendUnavailable):
        down.upsert(CORPUS[:1])
    health = down.health()
    assert health.up is False and health.detail
    assert time.monotonic() - started < 2


def test_server_that_never_answers_is_unavailable_after_the_timeout():
    with socket.socket() as silent:  # accepts connections (backlog), never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        slow = MeilisearchBackend(url=f"http://127.0.0.1:{port}", timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(BackendUnavailable):
            slow.search(SearchQuery("python"))
        assert 0.25 < time.monotonic() - started < 2


def test_a_rejected_key_is_unavailable_not_a_crash(filled):
    wrong = MeilisearchBackend(index_prefix=filled.index_prefix, api_key="not-the-key")
    with pytest.raises(BackendUnavailable):
        wrong.search(SearchQuery("python"))
    assert wrong.health().up is False


def test_search_before_any_index_exists_is_unavailable(fresh):
    with pytest.raises(BackendUnavailable, match="search_reindex"):
        fresh.search(SearchQuery("python"))
    assert fresh.health().detail.startswith("missing indexes")


# --- the circuit breaker: a hung engine costs a few timeouts, then none -----------------
class SilentEngine:
    """A TCP server that accepts every connection and answers none (a hung engine), until
    ``answering`` is set: then it replies to each request with an empty search result.
    It counts the connections made to it: what a search that "skipped the engine" must not
    add to."""

    BODY = b'{"hits": [], "totalHits": 0, "facetDistribution": {}}'

    def __init__(self) -> None:
        self.connections = 0
        self.answering = False
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            if not self.answering:
                self._held.append(conn)  # open, silent
                continue
            with conn:
                conn.settimeout(2)
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                head, _, body = request.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                    + f"Content-Length: {len(self.BODY)}\r\n\r\n".encode()
                    + self.BODY
                )

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self._sock.close()


@pytest.fixture
def silent_engine():
    engine = SilentEngine()
    yield engine
    engine.close()


@pytest.fixture
def searching_through(silent_engine, settings, monkeypatch):
    """The search service configured for Meilisearch, served by ``silent_engine``, with a
    breaker that opens after 2 failures and stays open unless a test lets a trial through."""
    backend = MeilisearchBackend(
        url=silent_engine.url,
        index_prefix="inbo_breaker",
        timeout_s=0.2,
        breaker_failures=2,
        breaker_reset_s=60.0,
    )
    monkeypatch.setitem(backends._instances, "meilisearch", backend)
    settings.SEARCH_BACKEND = "meilisearch"
    return backend


@pytest.mark.django_db
def test_a_hung_engine_opens_the_breaker_and_searches_fall_back_without_calling_it(
    silent_engine, searching_through
):
    def run() -> SearchResult:
        return search_service.search(SearchQuery("python"), user_id=None)

    first = [run() for _ in range(2)]  # each waits its timeout, then falls back
    assert silent_engine.connections == 2
    assert searching_through.breaker.current_state == breakers.OPEN

    later = [run() for _ in range(5)]
    health = searching_through.health()

    assert silent_engine.connections == 2  # none of these went near the engine
    assert all(r.degraded and r.backend == "postgres" for r in first + later)
    assert health.up is False and "circuit meilisearch open" in health.detail
    assert SearchLog.objects.filter(degraded=True).count() == 7


@pytest.mark.django_db
def test_after_the_reset_time_one_trial_closes_the_breaker_when_the_engine_answers(
    silent_engine, searching_through
):
    for _ in range(2):
        search_service.search(SearchQuery("python"), user_id=None)
    silent_engine.answering = True
    assert search_service.search(SearchQuery("python"), user_id=None).degraded is True
    assert silent_engine.connections == 2  # still open: the engine is not asked yet

    searching_through.breaker.allow_trial()  # the reset time is up
    trial = search_service.search(SearchQuery("python"), user_id=None)

    assert silent_engine.connections == 3
    assert trial.degraded is False and trial.backend == "meilisearch"
    assert searching_through.breaker.current_state == breakers.CLOSED
    assert search_service.search(SearchQuery("python"), user_id=None).degraded is False
    assert silent_engine.connections == 4


def test_a_missing_index_does_not_open_the_breaker(fresh):
    for _ in range(3):
        with pytest.raises(IndexMissing):
            fresh.search(SearchQuery("python"))
    assert fresh.breaker.current_state == breakers.CLOSED
