"""The search contract: the same cases against every backend (``search_backend``).

PostgreSQL always runs; Meilisearch runs when a server is up (``conftest.py``). Shapes the
cases rely on: highlights are HTML-escaped snippets with ``<mark>`` around matches, present
only for fields that matched; facets are ``{"category"|"provider"|"language": {value:
count}}`` over the filtered set (no ``provider`` facet for providers); ``Hit.id`` is the
document's id; an empty text lists everything that passes the filters, newest first.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reading_app.contracts import CatalogKind
from search_app.contracts import SearchQuery, Sort
from search_app.services.query import normalize_query
from tests.search.utils import ids, item_doc, provider_doc

ITEMS = [
    item_doc(
        1,
        "Kubernetes in production",
        summary="Running clusters without tears",
        body="Operators, pods and the control plane.",
        categories=["devops", "technology"],
        published_at=datetime(2024, 3, 1, tzinfo=UTC),
    ),
    item_doc(
        2,
        "Café culture in Lisbon",
        provider="Food Letters",
        provider_slug="food-letters",
        summary="Where to drink coffee",
        categories=["food"],
        language="pt",
        published_at=datetime(2024, 2, 10, tzinfo=UTC),
    ),
    item_doc(
        3,
        "Python typing tips",
        summary="Generics and protocols",
        body="<script>alert(1)</script> typing everywhere",
        categories=["python", "technology"],
        published_at=datetime(2024, 1, 15, tzinfo=UTC),
    ),
    item_doc(
        4,
        "Résumé writing for engineers",
        provider="Career Notes",
        provider_slug="career-notes",
        summary="Land the interview",
        categories=["careers"],
        published_at=datetime(2023, 12, 1, tzinfo=UTC),
    ),
    item_doc(
        5,
        "Kubernetes security checklist",
        provider="Ops Digest",
        provider_slug="ops-digest",
        summary="Hardening clusters",
        categories=["devops", "technology"],
        published_at=datetime(2024, 4, 20, tzinfo=UTC),
    ),
    item_doc(
        6,
        "Weekly market notes",
        provider="Money Mail",
        provider_slug="money-mail",
        summary="Stocks, bonds and rates",
        categories=["finance"],
        published_at=datetime(2024, 3, 15, tzinfo=UTC),
    ),
    item_doc(
        7,
        "Understanding Kubernetes networking",
        summary="Services and ingress",
        categories=["devops", "technology"],
        language="de",
        published_at=datetime(2023, 11, 1, tzinfo=UTC),
    ),
]
NEWEST_FIRST = [5, 6, 1, 2, 3, 4, 7]
PROVIDERS = [
    provider_doc(101, "Tech Weekly", summary="Software, weekly", categories=["technology"]),
    provider_doc(102, "Food Letters", summary="Eating well", categories=["food"], language="pt"),
    provider_doc(103, "Money Mail", summary="Markets and money", categories=["finance"]),
]


@pytest.fixture
def backend(search_backend):
    search_backend.upsert(ITEMS + PROVIDERS)
    return search_backend


def search(backend, text="", **kwargs):
    return backend.search(SearchQuery(text=text, **kwargs))


def test_prefix_of_the_last_word_matches_while_typing(backend):
    assert set(ids(search(backend, "kubern"))) == {1, 5, 7}
    assert ids(search(backend, "pyth")) == [3]
    assert ids(search(backend, "kubernetes secu")) == [5]


def test_a_typo_still_finds_the_word(backend):
    result = search(backend, "kubernetis")

    assert set(ids(result)) == {1, 5, 7}
    assert result.corrected_query is None or "kubernetes" in result.corrected_query


def test_accents_are_ignored_both_ways(backend):
    assert ids(search(backend, "cafe")) == [2]
    assert ids(search(backend, "CAFÉ")) == [2]
    assert ids(search(backend, "résumé")) == [4]
    assert ids(search(backend, "resume")) == [4]


def test_a_typo_with_accents_is_corrected_like_its_plain_spelling(backend):
    # Accented words are folded by the engine's own unaccent before the vocabulary is read.
    assert ids(search(backend, "résumee")) == ids(search(backend, "resumee")) == [4]


def test_title_weighs_more_than_summary_and_body(backend):
    backend.upsert(
        [
            item_doc(20, "Notes", body="quantum computing basics"),
            item_doc(21, "Quantum computing", summary="basics"),
            item_doc(22, "Basics", summary="quantum computing"),
        ]
    )

    assert ids(search(backend, "quantum computing"))[:3] == [21, 22, 20]


def test_filters_combine_and_sort_newest_first(backend):
    technology = search(backend, category="technology", sort=Sort.NEWEST)
    assert ids(technology) == [5, 1, 3, 7]

    in_q1 = search(
        backend,
        category="technology",
        date_from=datetime(2024, 1, 1, tzinfo=UTC),
        date_to=datetime(2024, 3, 1, tzinfo=UTC),
        sort=Sort.NEWEST,
    )
    assert ids(in_q1) == [3]  # date_to is exclusive

    assert ids(search(backend, "kubernetes", provider="tech-weekly", sort=Sort.NEWEST)) == [1, 7]
    assert ids(search(backend, language="pt")) == [2]
    assert ids(search(backend, "kubernetes", language="de")) == [7]
    assert search(backend, "kubernetes", category="food").total == 0


def test_facets_count_the_filtered_set(backend):
    result = search(backend, category="technology")

    assert result.total == 4
    assert result.facets["category"] == {"technology": 4, "devops": 3, "python": 1}
    assert result.facets["provider"] == {"tech-weekly": 3, "ops-digest": 1}
    assert result.facets["language"] == {"en": 3, "de": 1}


def test_highlights_mark_matches_and_escape_the_text(backend):
    result = search(backend, "kubernetes")
    by_id = {hit.id: hit for hit in result.hits}

    assert "<mark>Kubernetes</mark>" in by_id[1].highlights["title"]
    typing = search(backend, "typing")
    for hit in typing.hits:
        for snippet in hit.highlights.values():
            assert "<script>" not in snippet
    assert any("<mark>" in s for s in typing.hits[0].highlights.values())
    assert all(hit.highlights == {} for hit in search(backend).hits)


def test_pages_are_disjoint_and_cover_everything(backend):
    pages = [search(backend, limit=3, offset=offset) for offset in (0, 3, 6)]

    assert [p.total for p in pages] == [7, 7, 7]
    assert [hit for page in pages for hit in ids(page)] == NEWEST_FIRST
    assert ids(search(backend, limit=3, offset=9)) == []


def test_deleted_documents_disappear(backend):
    backend.delete(CatalogKind.ITEMS, [1, 999])

    assert set(ids(search(backend, "kubernetes"))) == {5, 7}
    assert search(backend).total == 6


def test_an_upsert_replaces_the_document(backend):
    backend.upsert([item_doc(6, "Bond yields explained", provider_slug="money-mail")])

    assert ids(search(backend, "bond yields")) == [6]
    assert ids(search(backend, "market")) == []


def test_empty_query_lists_everything_newest_first(backend):
    result = search(backend, "")

    assert result.total == 7
    assert ids(result) == NEWEST_FIRST


def test_providers_are_searched_apart_from_items(backend):
    result = search(backend, "money", doc_type=CatalogKind.PROVIDERS)

    assert ids(result) == [103]
    assert "provider" not in result.facets or result.facets["provider"] == {}
    assert search(backend, doc_type=CatalogKind.PROVIDERS, language="pt").total == 1
    assert set(ids(search(backend, "weekly", doc_type=CatalogKind.PROVIDERS))) == {101}


@pytest.mark.parametrize(
    "raw",
    [
        "\x00kubernetes",
        "\u202ekubernetes\u200f",
        "🚀 kubernetes 🚀",
        '"unterminated phrase',
        "-",
        "or",
        "!!! ::: &&& ||| <-> 'quoted' \\ back\\slash",
        "kubernetes " * 200,
        "\ud800 lone surrogate",
        "\uff4b\uff55\uff42\uff45\uff52\uff4e\uff45\uff54\uff45\uff53",  # full width
    ],
)
def test_odd_input_never_fails(backend, raw):
    result = search(backend, normalize_query(raw))

    assert result.total >= 0


def test_compound_words_match_typed_in_full_or_in_part(backend):
    backend.upsert([item_doc(30, "A hard-to-get ticket", summary="O'Reilly on queues")])

    assert ids(search(backend, "hard-to-get")) == [30]
    assert ids(search(backend, "hard-to-g")) == [30]
    assert ids(search(backend, "o'reilly")) == [30]
    assert ids(search(backend, "ticket -hard-to-get")) == []
