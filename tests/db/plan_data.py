"""Realistically sized tables for the query plan tests, written by ``INSERT … SELECT
generate_series`` in a few seconds: large enough that PostgreSQL prefers an index wherever
one fits, the way it does in production (on a handful of rows a sequential scan wins and a
plan proves nothing).

Shapes: 1,000 readers; 2,000 providers; 40,000 items over 60 days; each reader with 20 reading
progress rows (half finished), 30 interactions (mostly impressions) and 30 events in the
log over 25 days; an indexing outbox after an outage (dead letters, failed rows waiting for
their retry, a few due); 15,000 search documents and 10,000 vocabulary words.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from features_app import partitions

READERS = 1_000
PROVIDERS = 2_000
ITEMS = 40_000
CATEGORIES = 40
PROGRESS_PER_READER = 20
INTERACTIONS_PER_READER = 30
EVENTS_PER_READER = 30
DOCUMENTS = 15_000
WORDS = 10_000


@dataclass(frozen=True)
class World:
    """Ids the tests query with."""

    now: datetime
    first_user: int
    first_item: int
    first_provider: int
    first_category: int
    # An item many readers engaged with lately (co-reading's anchor).
    popular_item: int


# A pseudo-word of letters only (the vocabulary keeps no digits): the n-th word.
WORD_SQL = "translate(substr(md5(({n})::text), 1, 9), '0123456789', 'ghijklmnop')"


def word(n: int) -> str:
    """The ``n``-th pseudo-word, as ``WORD_SQL`` spells it."""
    return (
        hashlib.md5(str(n).encode())
        .hexdigest()[:9]
        .translate(str.maketrans("0123456789", "ghijklmnop"))
    )


def _one(cursor, sql: str, params=None):
    cursor.execute(sql, params or [])
    return cursor.fetchone()[0]


TABLES = (
    "auth_user",
    "reading_app_provider",
    "reading_app_category",
    "reading_app_item",
    "reading_app_item_categories",
    "reading_app_readingprogress",
    "experience_app_experienceinteraction",
    "features_app_userevent",
    "search_app_searchoutbox",
    "search_app_searchdocument",
    "search_app_searchvocabulary",
)


def vacuum() -> None:
    """Outside a transaction: the rows an earlier run rolled back leave the tables, so that
    every run plans over tables of the same size."""
    with connection.cursor() as c:
        c.execute(f"VACUUM {', '.join(TABLES)}")


def build(now: datetime) -> World:
    """Fill the tables (inside the caller's transaction) and ANALYZE them."""
    partitions.ensure_partitions(now - timedelta(days=30), now)
    w = {"now": now}
    with connection.cursor() as c:
        c.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, "
            "email, is_staff, is_active, date_joined) "
            "SELECT '', false, 'plan-reader-' || g, '', '', '', false, true, %(now)s "
            "FROM generate_series(1, %(n)s) g",
            {**w, "n": READERS},
        )
        first_user = _one(c, "SELECT min(id) FROM auth_user WHERE username LIKE 'plan-reader-%%'")
        c.execute(
            "INSERT INTO reading_app_provider (name, slug, description, language, country, "
            "website, is_sponsored, external_id, created_at, updated_at) "
            "SELECT 'Plan provider ' || g, 'plan-provider-' || g, '', 'en', '', '', false, "
            "NULL, %(now)s, %(now)s FROM generate_series(1, %(n)s) g",
            {**w, "n": PROVIDERS},
        )
        first_provider = _one(
            c, "SELECT min(id) FROM reading_app_provider WHERE slug LIKE 'plan-provider-%%'"
        )
        c.execute(
            "INSERT INTO reading_app_category (name, slug, parent_id) "
            "SELECT 'Plan topic ' || g, 'plan-topic-' || g, NULL FROM generate_series(1, %s) g",
            [CATEGORIES],
        )
        first_category = _one(
            c, "SELECT min(id) FROM reading_app_category WHERE slug LIKE 'plan-topic-%%'"
        )
        # Newest first every 130 s: 60 days; one in twenty unavailable.
        c.execute(
            "INSERT INTO reading_app_item (title, summary, body, url, published_at, word_count, "
            "reading_time_minutes, language, status, external_id, created_at, updated_at, "
            "provider_id) "
            "SELECT 'Plan item ' || g, '', '', 'https://plan.example/' || g, "
            "%(now)s - g * interval '130 seconds', 500, 3, "
            "'en', CASE WHEN g %% 20 = 0 THEN 'unavailable' ELSE 'published' END, NULL, "
            "%(now)s, %(now)s, %(p)s + g %% %(np)s FROM generate_series(1, %(n)s) g",
            {**w, "n": ITEMS, "p": first_provider, "np": PROVIDERS},
        )
        first_item = _one(c, "SELECT min(id) FROM reading_app_item WHERE title LIKE 'Plan item %%'")
        c.execute(
            "INSERT INTO reading_app_item_categories (item_id, category_id) "
            "SELECT %(i)s + g, %(c)s + g %% %(nc)s FROM generate_series(0, %(n)s - 1) g",
            {"i": first_item, "c": first_category, "nc": CATEGORIES, "n": ITEMS},
        )
        # Reading progress: reader u, their k-th read among the newest 5,000 items.
        c.execute(
            "INSERT INTO reading_app_readingprogress (progress, position, started_at, "
            "updated_at, completed_at, item_id, user_id) "
            "SELECT CASE WHEN k %% 2 = 0 THEN 1.0 ELSE 0.4 END, 100, "
            "%(now)s - (k * 17 + u %% 7) * interval '1 hour', "
            "%(now)s - (k * 17 + u %% 7) * interval '1 hour', "
            "CASE WHEN k %% 2 = 0 THEN %(now)s - (k * 17) * interval '1 hour' END, "
            "%(i)s + (u * 37 + k * 101) %% 5000, %(u)s + u "
            "FROM generate_series(0, %(nu)s - 1) u, generate_series(0, %(nk)s - 1) k",
            {
                **w,
                "i": first_item,
                "u": first_user,
                "nu": READERS,
                "nk": PROGRESS_PER_READER,
            },
        )
        # Interactions: two thirds impressions, then clicks, reads, dismisses and hides.
        c.execute(
            "INSERT INTO experience_app_experienceinteraction (interaction_type, section, "
            "position, request_id, event_id, occurred_at, received_at, dwell_ms, item_id, "
            "user_id) "
            "SELECT (ARRAY['impression', 'impression', 'impression', 'impression', "
            "'impression', 'impression', 'click', 'read', 'dismiss', 'hide'])[1 + k %% 10], "
            "'for_you', k %% 20, NULL, gen_random_uuid(), %(now)s - k * interval '20 hours', "
            "%(now)s, NULL, %(i)s + (u * 53 + k * 211) %% 20000, %(u)s + u "
            "FROM generate_series(0, %(nu)s - 1) u, generate_series(0, %(nk)s - 1) k",
            {**w, "i": first_item, "u": first_user, "nu": READERS, "nk": INTERACTIONS_PER_READER},
        )
        # The event log: engagements with the newest 3,000 items over 25 days; one reader in
        # ten also read the popular item this week.
        popular = first_item + 10
        c.execute(
            "INSERT INTO features_app_userevent (event_type, occurred_at, received_at, "
            "event_id, source, context, item_id, user_id) "
            "SELECT (ARRAY['impression', 'impression', 'click', 'read', 'save'])[1 + k %% 5], "
            "%(now)s - (k * 20 + u %% 20) * interval '1 hour', %(now)s, gen_random_uuid(), "
            "'client', '{}'::jsonb, "
            "CASE WHEN k = 1 AND u %% 10 = 0 THEN %(pop)s "
            "ELSE %(i)s + (u * 31 + k * 97) %% 3000 END, %(u)s + u "
            "FROM generate_series(0, %(nu)s - 1) u, generate_series(0, %(nk)s - 1) k",
            {
                **w,
                "pop": popular,
                "i": first_item,
                "u": first_user,
                "nu": READERS,
                "nk": EVENTS_PER_READER,
            },
        )
        # The outbox after a search outage: dead letters kept for inspection, failed rows
        # waiting for their retry, a few due and a few in flight.
        c.execute(
            "INSERT INTO search_app_searchoutbox (doc_type, object_id, op, status, attempts, "
            "next_attempt_at, claimed_at, created_at, changed_at, last_error, task_ref) "
            "SELECT 'items', g, 'upsert', s.status, 3, %(now)s + s.due * interval '1 minute', "
            "CASE WHEN s.status = 'in_flight' THEN %(now)s END, %(now)s, %(now)s, '', '' "
            "FROM generate_series(1, 10330) g, LATERAL (SELECT CASE "
            "WHEN g <= 8000 THEN 'dead' WHEN g <= 10000 THEN 'failed' "
            "WHEN g <= 10300 THEN 'pending' ELSE 'in_flight' END AS status, "
            "CASE WHEN g <= 8000 THEN -g WHEN g <= 10000 THEN g %% 600 + 1 "
            "ELSE -(g %% 60) END AS due) s",
            w,
        )
        words = lambda n: WORD_SQL.format(n=n)  # noqa: E731
        c.execute(
            "INSERT INTO search_app_searchdocument (doc_type, object_id, title, provider_id, "
            "provider_name, provider_slug, summary, body, categories, language, published_at, "
            "search_vector, indexed_at) "
            "SELECT 'items', g, t.title, NULL, 'Plan provider', 'plan-provider', t.summary, "
            # A body excerpt's worth of text, as stored (the vector here is title and summary).
            "repeat(t.title || ' ' || t.summary || ' ', 12), "
            "ARRAY['plan-topic-' || g %% 40]::varchar(140)[], 'en', "
            "%(now)s - g * interval '3 minutes', "
            "to_tsvector('inbo_search', t.title || ' ' || t.summary), %(now)s "
            f"FROM generate_series(1, %(n)s) g, LATERAL (SELECT "
            f"{words('g %% 10000')} || ' ' || {words('g * 7 %% 10000')} AS title, "
            f"{words('g * 13 %% 10000')} || ' ' || {words('g * 29 %% 10000')} AS summary) t",
            {**w, "n": DOCUMENTS},
        )
        c.execute(
            "INSERT INTO search_app_searchvocabulary (word, ndoc) "
            f"SELECT {words('g')}, 4 FROM generate_series(0, %s - 1) g "
            "ON CONFLICT (word) DO NOTHING",
            [WORDS],
        )
        for table in TABLES:
            c.execute(f"ANALYZE {table}")
        # Rows inserted into a GIN index wait in its pending list until vacuum (or the list's
        # size limit) merges them; the planner prices that list in, so a freshly filled table
        # looks far costlier to search by index than a live one does. Merge them, as
        # autovacuum would have.
        c.execute(
            "SELECT gin_clean_pending_list(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "WHERE a.amname = 'gin' AND i.indrelid = ANY(%s::regclass[])",
            [[t for t in TABLES if not t.startswith("features_app_userevent")]],
        )
    return World(
        now=now,
        first_user=first_user,
        first_item=first_item,
        first_provider=first_provider,
        first_category=first_category,
        popular_item=popular,
    )
