"""Meilisearch search latency and full reindex time on the benchmark catalog.

    MEILISEARCH_URL=http://127.0.0.1:7701 .venv/bin/python -m bench.search_meilisearch

Reads the benchmark database (``inbo_bench``, 100k items) read-only, builds the documents
with the application's own builder (``search_app.services.documents``), rebuilds the
``bench_*`` indexes through ``MeilisearchBackend.rebuild`` (timed: the zero-downtime path
``search_reindex`` takes), then times ``backend.search`` end to end (client, HTTP,
engine) for a fixed, seeded set of typical queries. Results: stdout and
``var/bench/search_meilisearch.json``. Knobs: ``BENCH_SEARCH_QUERIES`` (200),
``BENCH_SEARCH_PREFIX`` (index prefix, ``bench``), ``BENCH_SEARCH_SKIP_REBUILD=1`` (time
queries against the indexes of a previous run).
"""

from __future__ import annotations

import json
import os
import random
import re
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from bench.common import VAR, bench_env, check_targets, env_int

WORD = re.compile(r"[^\W\d_]{4,}")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def typical_queries(samples: list[dict], n: int, seed: int = 5) -> list[dict]:
    """``n`` query specs (text + filters) in the mix a search box sees: one or two words
    from real titles, a word being typed (prefix), a typo, a filter or a newest sort, and
    a few browses (empty text with a filter). ``samples``: items as dicts (title,
    categories, language, provider_slug)."""
    rng = random.Random(seed)
    specs: list[dict] = []
    while len(specs) < n:
        doc = rng.choice(samples)
        words = WORD.findall(doc["title"]) or ["news"]
        word = rng.choice(words).lower()
        kind = rng.choices(
            ["one", "two", "prefix", "typo", "category", "newest", "dated", "browse"],
            weights=[25, 20, 15, 10, 10, 8, 7, 5],
        )[0]
        spec: dict = {"kind": kind, "text": word}
        if kind == "two" and len(words) > 1:
            spec["text"] = " ".join(w.lower() for w in rng.sample(words, 2))
        elif kind == "prefix":
            spec["text"] = word[: max(3, len(word) - 3)]
        elif kind == "typo" and len(word) >= 5:
            i = rng.randrange(1, len(word) - 2)
            spec["text"] = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        elif kind == "category" and doc["categories"]:
            spec["category"] = rng.choice(doc["categories"])
        elif kind == "newest":
            spec["sort"] = "newest"
        elif kind == "dated":
            spec["date_from"] = (datetime.now(UTC) - timedelta(days=90)).isoformat()
            spec["language"] = doc["language"]
        elif kind == "browse":
            spec["text"] = ""
            spec["category"] = rng.choice(doc["categories"] or ["technology"])
        specs.append(spec)
    return specs


def main() -> int:
    env = bench_env()
    check_targets(env)
    os.environ.update(env)
    os.environ.setdefault("MEILISEARCH_URL", "http://127.0.0.1:7700")

    import django

    django.setup()
    from django.db import connection

    from reading_app.contracts import CatalogKind
    from search_app.contracts import SearchQuery, Sort
    from search_app.public import catalog_documents, documents_for, meilisearch_backend

    with connection.cursor() as cursor:  # this benchmark never writes to the catalog
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")

    backend = meilisearch_backend(
        index_prefix=os.environ.get("BENCH_SEARCH_PREFIX", "bench"),
        timeout_s=10,
        rebuild_timeout_s=3600,
    )
    n_queries = env_int("BENCH_SEARCH_QUERIES", 200)
    result: dict = {"url": backend.url, "prefix": backend.index_prefix}

    documents = {doc_type: catalog_documents(doc_type) for doc_type in CatalogKind}
    result["catalog"] = {t.value: len(d) for t, d in documents.items()}
    print(f"catalog: {result['catalog']}", flush=True)

    if os.environ.get("BENCH_SEARCH_SKIP_REBUILD") not in ("1", "true"):
        last = [time.perf_counter()]

        def progress(doc_type, done, total):
            if time.perf_counter() - last[0] > 5 or done == total:
                last[0] = time.perf_counter()
                print(f"  {doc_type.value}: {done}/{total}", flush=True)

        # Searchers during the rebuild: they must keep getting answers (zero downtime).
        stop = threading.Event()
        during: list[float] = []
        failures: list[str] = []

        def searcher() -> None:
            searching = meilisearch_backend(index_prefix=backend.index_prefix, timeout_s=10)
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    searching.search(SearchQuery("week"))
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    failures.append(f"{type(exc).__name__}: {exc}"[:200])
                during.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.05)

        thread = threading.Thread(target=searcher, daemon=True)
        if backend.health().documents.get("items"):
            thread.start()
        started = time.perf_counter()
        try:
            counts = backend.rebuild(lambda doc_type: documents[doc_type], progress=progress)
        finally:
            stop.set()
        seconds = round(time.perf_counter() - started, 1)
        result["reindex"] = {"documents": counts, "seconds": seconds}
        if thread.is_alive() or during:
            thread.join()
            result["reindex"]["searches_during"] = {
                "count": len(during),
                "failed": len(failures),
                "p50_ms": round(statistics.median(during), 1) if during else None,
                "p95_ms": round(percentile(during, 95), 1) if during else None,
                "errors": failures[:3],
            }
        print(f"reindex: {result['reindex']}", flush=True)

    sample_ids = random.Random(7).sample(list(documents[CatalogKind.ITEMS].ids), 2000)
    samples = [
        {
            "title": d.fields["title"],
            "categories": d.fields["categories"],
            "language": d.fields["language"],
        }
        for d in documents_for(CatalogKind.ITEMS, sample_ids).values()
    ]
    specs = typical_queries(samples, n_queries)

    def query_of(spec: dict) -> SearchQuery:
        date_from = spec.get("date_from")
        return SearchQuery(
            text=spec["text"],
            category=spec.get("category"),
            language=spec.get("language"),
            date_from=datetime.fromisoformat(date_from) if date_from else None,
            sort=Sort.NEWEST if spec.get("sort") == "newest" else Sort.RELEVANCE,
            limit=20,
        )

    for spec in specs[:20]:  # warm-up: connections, page cache
        backend.search(query_of(spec))
    timings: list[float] = []
    by_kind: dict[str, list[float]] = {}
    zero = 0
    for spec in specs:
        started = time.perf_counter()
        found = backend.search(query_of(spec))
        elapsed = (time.perf_counter() - started) * 1000
        timings.append(elapsed)
        by_kind.setdefault(spec["kind"], []).append(elapsed)
        zero += found.total == 0
    result["search_ms"] = {
        "queries": len(timings),
        "p50": round(statistics.median(timings), 1),
        "p95": round(percentile(timings, 95), 1),
        "p99": round(percentile(timings, 99), 1),
        "max": round(max(timings), 1),
        "zero_results": zero,
        "by_kind_p50": {k: round(statistics.median(v), 1) for k, v in sorted(by_kind.items())},
    }
    health = backend.health()
    result["health"] = {"documents": health.documents, "settings_drift": health.settings_drift}
    print(json.dumps(result, indent=2))
    VAR.mkdir(parents=True, exist_ok=True)
    (VAR / "search_meilisearch.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
