"""The hot queries use the index meant for them, on realistically sized tables.

Each test runs the real code path (selector, service, backend), takes the SQL it sent, and
asks PostgreSQL for that statement's plan (``EXPLAIN (FORMAT JSON)``, not executed again):
the intended index must be in it. Nothing forces the plan (no ``enable_seqscan = off``): the
tables are sized (``plan_data``) so that the planner chooses as it would in production, and
a plan that stops using its index fails here. docs/ARCHITECTURE.md lists the hot queries and
their indexes; ``manage.py db_report`` watches them in production.

The data is built once for the module, in a transaction rolled back at the end (other tests
never see it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experience_app import selectors as experience_selectors
from features_app import co_reading, partitions
from reading_app import selectors as reading_selectors
from reading_app.contracts import CatalogKind
from search_app.backends.postgres import PostgresBackend
from search_app.contracts import SearchQuery
from search_app.services import outbox
from tests.db import plan_data


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[plan_data.World]:
    with django_db_blocker.unblock():
        plan_data.vacuum()
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield plan_data.build(timezone.now())
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            partitions.forget()  # months created in the rolled-back transaction


def _sql_of(call: Callable[[], Any], contains: str) -> str:
    """The SQL the real code path sent (the statement containing ``contains``)."""
    with CaptureQueriesContext(connection) as captured:
        call()
    found = [q["sql"] for q in captured.captured_queries if contains in q["sql"]]
    assert found, f"no statement with {contains!r} among {captured.captured_queries}"
    return found[-1]


def _plan(sql: str) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        raw = cursor.fetchone()[0]
    return (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", ()):
        yield from _nodes(child)


def _indexes(plan: dict[str, Any]) -> set[str]:
    """Indexes the plan scans, a partition's index named by its partitioned parent's."""
    names = {n["Index Name"] for n in _nodes(plan) if "Index Name" in n}
    if not names:
        return names
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, coalesce(p.relname, c.relname) FROM pg_class c "
            "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid "
            "LEFT JOIN pg_class p ON p.oid = i.inhparent WHERE c.relname = ANY(%s)",
            [list(names)],
        )
        return {root for _, root in cursor.fetchall()}


def _seq_scans(plan: dict[str, Any]) -> set[str]:
    """Tables the plan reads whole, empty ones left out (the event log's months ahead)."""
    tables = {n["Relation Name"] for n in _nodes(plan) if n["Node Type"] == "Seq Scan"}
    if not tables:
        return tables
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s) AND reltuples > 0",
            [list(tables)],
        )
        return {row[0] for row in cursor.fetchall()}


def _tree(node: dict[str, Any], depth: int = 0) -> str:
    """The plan as indented lines: node, relation, index, conditions."""
    parts = [node["Node Type"], node.get("Subplan Name", "")]
    parts += [f"{k}={node[k]}" for k in ("Relation Name", "Index Name") if k in node]
    parts += [f"{k}: {node[k]}" for k in ("Index Cond", "Recheck Cond", "Filter") if k in node]
    lines = ["  " * depth + " ".join(p for p in parts if p)]
    lines += [_tree(child, depth + 1) for child in node.get("Plans", ())]
    return "\n".join(lines)


def _assert_uses(sql: str, *indexes: str) -> dict[str, Any]:
    plan = _plan(sql)
    used = _indexes(plan)
    missing = set(indexes) - used
    assert not missing, f"{missing} not in the plan (uses {used}):\n{_tree(plan)}"
    return plan


def test_home_candidates_read_the_newest_items_by_index(world):
    since = world.now - timedelta(days=21)
    recent = _sql_of(
        lambda: reading_selectors.recent_item_ids(since=since, limit=200), "reading_app_item"
    )
    _assert_uses(recent, "item_status_pub_idx")
    fresh = _sql_of(
        lambda: reading_selectors.recent_item_ids(
            since=since,
            limit=50,
            provider_ids=range(world.first_provider, world.first_provider + 12),
        ),
        "reading_app_item",
    )
    _assert_uses(fresh, "item_provider_pub_idx")
    focused = _sql_of(
        lambda: reading_selectors.recent_item_ids(
            since=since, limit=200, category_ids=[world.first_category, world.first_category + 3]
        ),
        "reading_app_item",
    )
    # Narrowed by the topics' item lists, by index (whether the newest items are walked
    # first or the topics' items joined depends on how many items the topics have).
    assert _indexes(_plan(focused)) & {
        "reading_app_item_categories_category_id_f2f12313",
        "reading_app_item_categories_item_id_bb424b9b",
        "reading_app_item_categories_item_id_category_id_ac59f8f1_uniq",
    }


def test_never_again_filter_reads_the_partial_index(world):
    user = world.first_user + 17
    sql = _sql_of(
        lambda: experience_selectors.never_again_item_ids(user_id=user),
        "experience_app_experienceinteraction",
    )
    plan = _assert_uses(sql, "interaction_never_again_idx")
    assert not _seq_scans(plan)
    completed = _sql_of(
        lambda: reading_selectors.completed_item_ids(user_id=user), "reading_app_readingprogress"
    )
    assert not _seq_scans(_plan(completed))


def test_cached_home_never_again_check_reads_both_tables_by_user_and_item(world):
    # The check every cached home runs: one statement, narrowed to the feed's items.
    user = world.first_user + 17
    feed = range(world.first_item, world.first_item + 5000, 100)
    sql = _sql_of(
        lambda: experience_selectors.never_again_among(user_id=user, item_ids=list(feed)),
        "experience_app_experienceinteraction",
    )
    assert "reading_app_readingprogress" in sql
    plan = _assert_uses(sql, "interaction_never_again_idx", "reading_progress_unique")
    assert not _seq_scans(plan)


def test_continue_reading_walks_the_in_progress_index(world):
    user = world.first_user + 42
    listed = _sql_of(
        lambda: list(reading_selectors.continue_reading_list(user_id=user)[:20]),
        "reading_app_readingprogress",
    )
    _assert_uses(listed, "reading_in_progress_idx")
    feed = _sql_of(
        lambda: reading_selectors.in_progress(
            user_id=user, since=world.now - timedelta(days=14), limit=50
        ),
        "reading_app_readingprogress",
    )
    _assert_uses(feed, "reading_in_progress_idx")


def test_co_reading_looks_readers_up_by_item_then_by_reader(world):
    since = world.now - timedelta(days=7)
    sql = _sql_of(
        lambda: co_reading.co_read_from_log(world.popular_item, since=since, limit=40),
        "CROSS JOIN LATERAL",
    )
    plan = _assert_uses(sql, "user_event_item_time_idx", "user_event_user_time_idx")
    assert not _seq_scans(plan)
    anchor = _sql_of(
        lambda: co_reading.last_engaged_item_id(world.first_user + 5, since=since),
        "features_app_userevent",
    )
    _assert_uses(anchor, "user_event_user_time_idx")


def test_outbox_claim_walks_live_rows_in_its_order(world):
    sql = _sql_of(lambda: outbox.claim(100), "FOR UPDATE SKIP LOCKED")
    plan = _assert_uses(sql, "search_outbox_live_due_idx")
    # The due rows come first in the index's order: no sort of every live row.
    assert "Sort" not in {n["Node Type"] for n in _nodes(plan)}, _tree(plan)


def test_search_matches_through_the_text_index(world):
    text = plan_data.word(1234)
    sql = _sql_of(
        lambda: PostgresBackend().search(SearchQuery(text=text, doc_type=CatalogKind.ITEMS)),
        "m AS MATERIALIZED",
    )
    plan = _assert_uses(sql, "search_document_vector_idx")
    assert not _seq_scans(plan)


def test_search_corrections_use_the_trigram_index(world):
    text = plan_data.word(1234)
    typo = "q" + plan_data.word(4321)[1:]  # in no document, no vocabulary word
    corrections = _sql_of(
        lambda: PostgresBackend().search(
            SearchQuery(text=f"{typo} {text}", doc_type=CatalogKind.ITEMS)
        ),
        "ORDER BY similarity(v.word,",
    )
    _assert_uses(corrections, "search_vocab_trgm_idx")
    # A prefix word (the last one, typed on): the same index for the similar words, and the
    # vocabulary's pattern index for "is it the start of a known word".
    prefix = _sql_of(
        lambda: PostgresBackend().search(
            SearchQuery(text=f"{text} {typo}*", doc_type=CatalogKind.ITEMS)
        ),
        "ORDER BY similarity(v.word,",
    )
    _assert_uses(prefix, "search_vocab_trgm_idx")
