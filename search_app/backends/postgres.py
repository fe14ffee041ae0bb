"""PostgreSQL full-text backend: ``SearchDocument`` rows with a weighted ``tsvector``.

- **Vector**: title A > provider B > summary C > body D, each field twice: through
  ``inbo_search`` (English stems, so "models" finds "model") and ``inbo_prefix`` (words as
  written, so the prefix being typed matches the word even past its stem). Both
  configurations strip accents (the ``unaccent`` dictionary), on both sides. GIN index.
- **Query**: ``pg_text`` builds the ``tsquery`` from parameters only. Unknown words are
  corrected first: a word that is not in ``SearchVocabulary``, not a stop word, and matches
  no document is replaced by the most similar vocabulary word (``pg_trgm``); the result
  says ``corrected_query``.
- **One statement** answers a search: the matching set is materialized once, then counted,
  faceted (category, provider, language; top 100 values each), sorted (``ts_rank_cd`` or
  newest) and paged; ``ts_headline`` runs on the returned page only. Everything runs under
  ``SEARCH_STATEMENT_TIMEOUT_MS`` (``SET LOCAL``); a timeout raises ``BackendUnavailable``.
- **Rebuild** writes every document in one transaction: searchers see the old rows until
  it commits, then the new ones (MVCC), never a half-built index.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import OperationalError, connection, connections, transaction
from django.utils import timezone

from inbo.replicas import lag_tolerant, read_alias
from reading_app.contracts import CatalogKind
from search_app.backends import pg_text
from search_app.backends.base import BackendUnavailable, SearchBackend
from search_app.contracts import (
    BackendHealth,
    Document,
    Hit,
    SearchQuery,
    SearchResult,
    Sort,
)
from search_app.services.query import normalize_query

DOCS = "search_app_searchdocument"
VOCAB = "search_app_searchvocabulary"
WRITE_BATCH = 1000
FACET_VALUES = 100
# Taken by a rebuild for its whole transaction, and tried by each indexing run: the
# indexer waits for a rebuild instead of blocking on its rows.
INDEX_LOCK_KEY = 0x1B0_5EA4C
TEXT_SEARCH_CONFIGS = ("inbo_search", "inbo_prefix")

_PRE, _POST = "\x02", "\x03"
_HEADLINE = {
    "title": f"HighlightAll=true, StartSel={_PRE}, StopSel={_POST}",
    "summary": f"MaxWords=40, MinWords=20, ShortWord=2, StartSel={_PRE}, StopSel={_POST}",
    "body": (
        'MaxFragments=2, MaxWords=18, MinWords=6, ShortWord=2, FragmentDelimiter=" … ", '
        f"StartSel={_PRE}, StopSel={_POST}"
    ),
}

# A field's text twice: stemmed and as written, with the field's weight.
_VECTOR_PART = (
    "setweight(to_tsvector('inbo_search', {f}), '{w}') || "
    "setweight(to_tsvector('inbo_prefix', {f}), '{w}')"
)
_VECTOR = " || ".join(
    _VECTOR_PART.format(f=f, w=w)
    for f, w in (("t.title", "A"), ("t.vector_provider", "B"), ("t.summary", "C"), ("t.body", "D"))
)
_UPSERT = f"""
INSERT INTO {DOCS} (doc_type, object_id, title, provider_id, provider_name, provider_slug,
                    summary, body, categories, language, published_at, search_vector, indexed_at)
SELECT t.doc_type, t.object_id, t.title, t.provider_id, t.provider_name, t.provider_slug,
       t.summary, t.body, t.categories, t.language, t.published_at, {_VECTOR},
       coalesce(%s, clock_timestamp())
FROM jsonb_to_recordset(%s::jsonb) AS t(
    doc_type text, object_id bigint, title text, provider_id bigint, provider_name text,
    provider_slug text, vector_provider text, summary text, body text,
    categories varchar(140)[], language text, published_at timestamptz)
ON CONFLICT (doc_type, object_id) DO UPDATE SET
    title = EXCLUDED.title, provider_id = EXCLUDED.provider_id,
    provider_name = EXCLUDED.provider_name, provider_slug = EXCLUDED.provider_slug,
    summary = EXCLUDED.summary, body = EXCLUDED.body, categories = EXCLUDED.categories,
    language = EXCLUDED.language, published_at = EXCLUDED.published_at,
    search_vector = EXCLUDED.search_vector, indexed_at = EXCLUDED.indexed_at
"""
# Words of documents (as written, unaccented, lower case, no stop words) for typo correction.
_WORDS_OF = f"""
SELECT w, count(*) FROM {DOCS} d,
    unnest(tsvector_to_array(to_tsvector('inbo_prefix',
        concat_ws(' ', d.title, d.provider_name, d.summary, d.body)))) AS w
WHERE {{where}} AND length(w) BETWEEN 3 AND 64 AND w !~ '[0-9_]'
GROUP BY w
"""
_VOCAB_ADD = f"INSERT INTO {VOCAB} (word, ndoc) {{words}} ON CONFLICT (word) DO NOTHING"

# One row per word to check: (index, word, is the prefix being typed). A word is unknown
# when it is no vocabulary word (nor, for a prefix, the start of one), not a stop word, and
# in no document; it is then replaced by the most similar vocabulary word, if any. A prefix
# that starts no word is either a misspelled start ("kubrn" -> kubernetes: word similarity)
# or a whole misspelled word ("rokets" -> rockets: similarity, which word similarity alone
# scores below its threshold); the better of the two picks.
# Typo correction, one branch per word with the word as a literal: the planner sees the word,
# costs the trigram GIN index (``search_vocab_trgm_idx``) and the prefix LIKE range on the
# word's pattern index, instead of reading the vocabulary whole per word as a correlated
# subquery over ``unnest()`` did (tests/db/test_query_plans.py).
_CORRECTION = rf"""
SELECT %s::int, coalesce(
    (SELECT v.word FROM {VOCAB} v WHERE NOT %s AND v.word %% %s
     ORDER BY similarity(v.word, %s) DESC, v.ndoc DESC, v.word LIMIT 1),
    (SELECT v.word FROM {VOCAB} v WHERE %s AND (v.word %% %s OR %s <%% v.word)
     ORDER BY greatest(similarity(v.word, %s), word_similarity(%s, v.word)) DESC,
              v.ndoc DESC, v.word
     LIMIT 1))
WHERE numnode(plainto_tsquery('inbo_search', %s)) > 0
  AND NOT EXISTS (SELECT 1 FROM {VOCAB} v WHERE v.word = %s)
  AND NOT (%s AND EXISTS (SELECT 1 FROM {VOCAB} v WHERE v.word LIKE %s))
  AND NOT EXISTS (
      SELECT 1 FROM {DOCS} d WHERE d.search_vector @@ plainto_tsquery('inbo_search', %s))
"""
_NORMALIZE = (
    "SELECT array_agg(lower(unaccent(w)) ORDER BY n) "
    "FROM unnest(%s::text[]) WITH ORDINALITY t(w, n)"
)


def _like_prefix(word: str) -> str:
    """A LIKE pattern for words starting with ``word`` (its wildcards escaped)."""
    return word.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"


def _corrections_sql(words: Sequence[str], prefixes: Sequence[bool]) -> tuple[str, list]:
    params: list[Any] = []
    for i, (w, prefix) in enumerate(zip(words, prefixes, strict=True)):
        params += [i, prefix, w, w, prefix, w, w, w, w, w, w, prefix, _like_prefix(w), w]
    return " UNION ALL ".join([_CORRECTION] * len(words)), params


def _order(sort: Sort, has_text: bool, alias: str) -> str:
    newest = f"{alias}.published_at DESC NULLS LAST, {alias}.object_id DESC"
    if sort == Sort.RELEVANCE and has_text:
        return f"{alias}.rank DESC, {newest}"
    return newest


def _search_sql(query: SearchQuery, tsquery: tuple[str, list[str]] | None) -> tuple[str, list]:
    params: list[Any] = []
    if tsquery is not None:
        q_sql, q_params = tsquery
        head = f"WITH q AS (SELECT {q_sql} AS query), "
        params += q_params
        # Ranking reads every match's vector: not when the order is by date anyway.
        rank = (
            "ts_rank_cd(d.search_vector, q.query, 1)"
            if query.sort == Sort.RELEVANCE
            else "0.0::real"
        )
        source = f"{DOCS} d, q"
        where = ["d.doc_type = %s", "d.search_vector @@ q.query"]
    else:
        head, rank, source, where = "WITH ", "0.0::real", f"{DOCS} d", ["d.doc_type = %s"]
    params.append(query.doc_type.value)
    if query.category:
        where.append("d.categories @> ARRAY[%s]::varchar(140)[]")
        params.append(query.category)
    if query.language:
        where.append("d.language = %s")
        params.append(query.language)
    if query.doc_type == CatalogKind.ITEMS:
        if query.provider:
            where.append("d.provider_slug = %s")
            params.append(query.provider)
        if query.date_from is not None:
            where.append("d.published_at >= %s")
            params.append(query.date_from)
        if query.date_to is not None:
            where.append("d.published_at < %s")
            params.append(query.date_to)
    has_text = tsquery is not None
    if has_text:
        headlines = ", ".join(f"ts_headline('inbo_search', d.{f}, q.query, %s)" for f in _HEADLINE)
        params_headline = list(_HEADLINE.values())
        page_source = f"page p JOIN {DOCS} d ON d.id = p.id, q"
    else:
        headlines, params_headline, page_source = "NULL, NULL, NULL", [], "page p"
    facet = (
        "(SELECT coalesce(json_agg(json_build_array(v, n) ORDER BY n DESC, v), '[]') FROM "
        f"(SELECT v, count(*) AS n FROM (SELECT {{col}} AS v FROM m) AS vals GROUP BY 1 "
        f"ORDER BY 2 DESC, 1 LIMIT {FACET_VALUES}) f)"
    )
    category_facet = facet.format(col="unnest(m.categories)")
    language_facet = facet.format(col="m.language")
    provider_facet = (
        facet.format(col="m.provider_slug") if query.doc_type == CatalogKind.ITEMS else "'[]'::json"
    )
    sql = f"""
{head}m AS MATERIALIZED (
    SELECT d.id, d.object_id, d.categories, d.provider_slug, d.language, d.published_at,
           {rank} AS rank
    FROM {source} WHERE {" AND ".join(where)}
),
page AS (
    SELECT m.id, m.object_id, m.rank, m.published_at FROM m
    ORDER BY {_order(query.sort, has_text, "m")} LIMIT %s OFFSET %s
)
SELECT (SELECT count(*) FROM m), {category_facet}, {provider_facet}, {language_facet},
    (SELECT coalesce(json_agg(json_build_array(p.object_id, p.rank, {headlines})
                              ORDER BY {_order(query.sort, has_text, "p")}), '[]')
     FROM {page_source})
"""
    params += [max(query.limit, 0), max(query.offset, 0), *params_headline]
    return sql, params


def _snippet(value: str | None) -> str | None:
    """A headline with matches as ``<mark>``, the text escaped; None without a match."""
    if not value or _PRE not in value:
        return None
    escaped = html.escape(value, quote=False)
    return escaped.replace(_PRE, "<mark>").replace(_POST, "</mark>")


def _row(document: Document) -> dict[str, Any]:
    f = document.fields
    providers = document.doc_type == CatalogKind.PROVIDERS
    published = f.get("published_at")
    return {
        "doc_type": document.doc_type.value,
        "object_id": document.id,
        "title": f.get("title") or "",
        "provider_id": f.get("provider_id"),
        "provider_name": f.get("provider") or "",
        "provider_slug": f.get("provider_slug") or "",
        # A provider's name is its title already: not counted twice.
        "vector_provider": "" if providers else (f.get("provider") or ""),
        "summary": f.get("summary") or "",
        "body": f.get("body") or "",
        "categories": list(f.get("categories") or ()),
        "language": f.get("language") or "",
        "published_at": published.isoformat() if isinstance(published, datetime) else None,
    }


class PostgresBackend(SearchBackend):
    """Full-text search in the application's own database (no extra service)."""

    name = "postgres"

    # --- reads -------------------------------------------------------------------------
    @contextmanager
    def _bounded(self) -> Iterator[Any]:
        """A cursor in a transaction whose statements time out after
        ``SEARCH_STATEMENT_TIMEOUT_MS``; the previous timeout is restored after. On a
        replica inside a lag-tolerant call (``inbo.replicas``)."""
        db = connections[read_alias()]
        nested = db.in_atomic_block
        with transaction.atomic(using=db.alias), db.cursor() as cursor:
            previous = None
            if nested:  # SET LOCAL would outlive this block: put the old value back
                cursor.execute("SELECT current_setting('statement_timeout')")
                previous = cursor.fetchone()[0]
            cursor.execute(
                "SELECT set_config('statement_timeout', %s, true)",
                [str(settings.SEARCH_STATEMENT_TIMEOUT_MS)],
            )
            yield cursor
            if previous is not None:
                cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])

    def search(self, query: SearchQuery) -> SearchResult:
        text = normalize_query(query.text)
        try:
            corrected, (total, categories, providers, languages, page) = self._read(query, text)
        except OperationalError as exc:  # statement timeout, lost connection
            raise BackendUnavailable(f"postgres search: {exc}") from exc
        facets = {"category": dict(_pairs(categories)), "language": dict(_pairs(languages))}
        if query.doc_type == CatalogKind.ITEMS:
            facets["provider"] = dict(_pairs(providers))
        hits = []
        for object_id, rank, *headlines in _json(page):
            snippets = {f: _snippet(h) for f, h in zip(_HEADLINE, headlines, strict=True)}
            hits.append(
                Hit(
                    id=int(object_id),
                    score=float(rank or 0.0),
                    highlights={f: s for f, s in snippets.items() if s is not None},
                )
            )
        return SearchResult(
            hits=hits, total=int(total), facets=facets, corrected_query=corrected, backend=self.name
        )

    @lag_tolerant  # the index follows the catalog through the outbox anyway: may lag
    def _read(self, query: SearchQuery, text: str) -> tuple[str | None, tuple]:
        """(corrected text or None, the search statement's row)."""
        with self._bounded() as cursor:
            corrected = None
            parsed = pg_text.parse(text) if text else None
            if parsed is not None:
                fixed = self._correct(cursor, parsed)
                if fixed != text:
                    corrected, parsed = fixed, pg_text.parse(fixed)
            tsquery = pg_text.tsquery_sql(parsed) if parsed is not None else None
            sql, params = _search_sql(query, tsquery)
            cursor.execute(sql, params)
            return corrected, cursor.fetchone()

    def _correct(self, cursor: Any, parsed: pg_text.ParsedText) -> str:
        words = pg_text.correctable_words(parsed)
        if not words:
            return parsed.text
        texts = [w.text.lower() for w in words]
        if not all(t.isascii() for t in texts):
            # unaccent() is the dictionary's: only PostgreSQL folds accents as the index does
            # (ASCII letters have no accent to fold, and lower() agrees on them).
            cursor.execute(_NORMALIZE, [texts])
            texts = cursor.fetchone()[0]
        cursor.execute(*_corrections_sql(texts, [w.prefix for w in words]))
        replacements = {words[i]: word for i, word in cursor.fetchall() if word}
        return pg_text.replace_words(parsed.text, replacements) if replacements else parsed.text

    # --- writes ------------------------------------------------------------------------
    def upsert(self, documents: Sequence[Document]) -> None:
        if documents:
            with transaction.atomic(), connection.cursor() as cursor:
                self._write(cursor, documents, indexed_at=None)
                self._add_words(cursor, documents)

    def _write(
        self, cursor: Any, documents: Sequence[Document], *, indexed_at: datetime | None
    ) -> None:
        latest = {(d.doc_type, d.id): d for d in documents}  # ON CONFLICT: one row per key
        rows = [_row(d) for d in latest.values()]
        for start in range(0, len(rows), WRITE_BATCH):
            cursor.execute(_UPSERT, [indexed_at, json.dumps(rows[start : start + WRITE_BATCH])])

    def _add_words(self, cursor: Any, documents: Sequence[Document]) -> None:
        for doc_type in {d.doc_type for d in documents}:
            ids = [d.id for d in documents if d.doc_type == doc_type]
            words = _WORDS_OF.format(where="d.doc_type = %s AND d.object_id = ANY(%s)")
            cursor.execute(_VOCAB_ADD.format(words=words), [doc_type.value, ids])

    def delete(self, doc_type: CatalogKind, ids: Sequence[int]) -> None:
        if ids:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {DOCS} WHERE doc_type = %s AND object_id = ANY(%s)",
                    [doc_type.value, list(ids)],
                )

    def rebuild(
        self, documents: Callable[[CatalogKind], Sequence[Document]], *, progress: Any = None
    ) -> dict[str, int]:
        """Rewrite every document and the vocabulary in one transaction (readers keep the
        old rows until it commits); rows of documents that no longer exist go."""
        counts: dict[str, int] = {}
        stamp = timezone.now()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [INDEX_LOCK_KEY])
            for doc_type in CatalogKind:
                docs = documents(doc_type)
                total, done = len(docs), 0
                for start in range(0, total, WRITE_BATCH):
                    chunk = list(docs[start : start + WRITE_BATCH])
                    self._write(cursor, chunk, indexed_at=stamp)
                    done += len(chunk)
                    if progress is not None:
                        progress(doc_type, done, total)
                cursor.execute(
                    f"DELETE FROM {DOCS} WHERE doc_type = %s AND indexed_at <> %s",
                    [doc_type.value, stamp],
                )
                counts[doc_type.value] = done
            self.refresh_vocabulary(cursor)
        with connection.cursor() as cursor:
            # Every row was rewritten: make the old versions reusable (VACUUM cannot run in
            # a transaction) and give the planner fresh statistics on words and types.
            command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
            cursor.execute(f"{command} {DOCS}")
            cursor.execute(f"{command} {VOCAB}")
        return counts

    def refresh_vocabulary(self, cursor: Any) -> None:
        """Recompute the vocabulary from every document (after a rebuild)."""
        cursor.execute(f"DELETE FROM {VOCAB}")
        cursor.execute(_VOCAB_ADD.format(words=_WORDS_OF.format(where="true")))

    # --- health ------------------------------------------------------------------------
    def health(self) -> BackendHealth:
        started = time.perf_counter()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                latency_ms = (time.perf_counter() - started) * 1000
                cursor.execute(f"SELECT doc_type, count(*) FROM {DOCS} GROUP BY doc_type")
                counts = dict(cursor.fetchall())
                cursor.execute(
                    "SELECT count(*) FROM pg_ts_config WHERE cfgname = ANY(%s)",
                    [list(TEXT_SEARCH_CONFIGS)],
                )
                configs = cursor.fetchone()[0]
        except OperationalError as exc:
            return BackendHealth(
                up=False, latency_ms=(time.perf_counter() - started) * 1000, detail=str(exc)
            )
        drift = configs != len(TEXT_SEARCH_CONFIGS)
        return BackendHealth(
            up=True,
            latency_ms=latency_ms,
            documents={t.value: int(counts.get(t.value, 0)) for t in CatalogKind},
            settings_drift=drift,
            detail="text search configurations missing (migrate search_app)" if drift else "",
        )


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _pairs(value: Any) -> list[tuple[str, int]]:
    return [(str(v), int(n)) for v, n in _json(value) if v is not None and v != ""]
