"""Where a home request spends its time, on the benchmark world (in process, no server).

    python -m bench.profile_home [--cold] [--personalized] [--requests N] [--cprofile] [--top N]

Calls ``GET /api/v1/experience/home/`` through Django's test client (middleware, token
authentication, view, renderer) for ``N`` bench users, warm (their feeds built first) or
``--cold`` (their cached feeds deleted first), and prints: wall time per request, the time
of each step of the feed (the calls ``experience_app.services.feed`` makes, timed by
wrapping them), every SQL statement grouped by shape with its count and total time, the
Redis round trips, and with ``--cprofile`` the functions that took the most time (which
slows the Python parts down, so the step times are measured without it). ``--personalized``
sets up what `make bench`'s personalized path has (20 rules, the users' profiles and
sessions in progress; bench/personalization.py) and removes it at the end. Needs the
benchmark's Redis running (``bench/run.sh`` starts it; see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import cProfile
import re
import statistics
import time
from collections import defaultdict

from bench.common import print_profile, setup_django

_LITERALS = re.compile(r"\b\d+\b|'[^']*'|%s")


def _shape(sql: str) -> str:
    """An SQL statement with its literals and parameter lists folded, for grouping."""
    shape = _LITERALS.sub("?", " ".join(sql.split()))
    return re.sub(r"\(\?(?:, \?)*\)", "(…)", shape)


# What the feed service calls, by module: each is wrapped to time it. (Module attributes
# are looked up at call time, so wrapping them reaches the feed's calls.)
STEPS = {
    "experience_app.services.feed.cache": ("build_feed", "_never_again"),
    "experience_app.services.feed.build": (
        "rank",
        "time_place_signals",
        "_session",
        "without_similar",
    ),
    "rules_app.public": ("campaign_item_ids", "adjust_ranked", "apply"),
    "experience_app.services.feed.served_log": ("push", "store"),
    "features_app.public": (
        "user_profile",
        "trending",
        "item_signals",
        "co_read",
        "last_engaged_item_id",
    ),
    "reading_app.public": (
        "subscribed_provider_ids",
        "completed_item_ids",
        "in_progress",
        "recent_item_ids",
        "item_facets",
        "item_cards",
        "category_names",
    ),
    "experience_app.selectors": (
        "interest_category_ids",
        "negative_item_ids",
        "never_again_item_ids",
        "never_again_among",
    ),
    "json": ("dumps", "loads"),
}


def _wrap_steps(steps: dict[str, list[float]]):
    import functools
    import importlib

    originals = []
    for module_name, names in STEPS.items():
        module = importlib.import_module(module_name)
        for name in names:
            original = getattr(module, name, None)
            if original is None:  # the code moved on; time what exists
                continue

            def timed(*a, __original=original, __label=f"{module_name}.{name}", **k):
                began = time.perf_counter()
                try:
                    return __original(*a, **k)
                finally:
                    steps[__label].append(time.perf_counter() - began)

            setattr(module, name, functools.wraps(original)(timed))
            originals.append((module, name, original))

    def restore() -> None:
        for module, name, original in originals:
            setattr(module, name, original)

    return restore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="delete each user's cached feed")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--cprofile", action="store_true", help="also profile functions")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--personalized", action="store_true", help="rules, profiles and sessions in progress"
    )
    args = parser.parse_args()
    setup_django()
    import redis
    from django.db import connection
    from django.test import Client

    from bench.load import HOME, bench_users, forget_feeds

    users = bench_users()[1000 : 1000 + args.requests]
    client = Client()
    ids = [u for u, _ in users]
    forget_feeds(ids)
    if args.personalized:
        from datetime import UTC, datetime

        from bench import personalization

        personalization.start(ids, datetime.now(UTC))
    if not args.cold:
        for _, token in users:
            client.get(HOME, HTTP_AUTHORIZATION=f"Token {token}")
    # One request first, not measured: imports, connections.
    client.get(HOME, HTTP_AUTHORIZATION=f"Token {bench_users()[0][1]}")

    sql: dict[str, list[float]] = defaultdict(list)

    def timed_sql(execute, statement, params, many, context):
        began = time.perf_counter()
        try:
            return execute(statement, params, many, context)
        finally:
            sql[_shape(statement)].append(time.perf_counter() - began)

    redis_calls: list[float] = []
    original_pipeline = redis.client.Pipeline.execute
    original_command = redis.Redis.execute_command

    def timed_pipeline(self, *a, **k):
        began = time.perf_counter()
        try:
            return original_pipeline(self, *a, **k)
        finally:
            redis_calls.append(time.perf_counter() - began)

    def timed_command(self, *a, **k):
        began = time.perf_counter()
        try:
            return original_command(self, *a, **k)
        finally:
            redis_calls.append(time.perf_counter() - began)

    steps: dict[str, list[float]] = defaultdict(list)
    restore = _wrap_steps(steps)
    redis.client.Pipeline.execute = timed_pipeline  # type: ignore[method-assign]
    redis.Redis.execute_command = timed_command  # type: ignore[method-assign]
    profiler = cProfile.Profile()
    walls = []
    with connection.execute_wrapper(timed_sql):
        for _, token in users:
            began = time.perf_counter()
            if args.cprofile:
                profiler.enable()
            response = client.get(HOME, HTTP_AUTHORIZATION=f"Token {token}")
            if args.cprofile:
                profiler.disable()
            walls.append(time.perf_counter() - began)
            assert response.status_code == 200, response.content[:200]
            if args.cold:
                assert response.json()["cached"] is False
    redis.client.Pipeline.execute = original_pipeline  # type: ignore[method-assign]
    redis.Redis.execute_command = original_command  # type: ignore[method-assign]
    restore()
    forget_feeds(ids)
    if args.personalized:
        personalization.forget(ids)

    n = len(walls)
    ms = sorted(w * 1000 for w in walls)
    kind = "cold" if args.cold else "warm"
    print(f"\n{kind} home, {n} requests (one at a time, in process)")
    print(
        f"  wall ms per request: p50 {statistics.median(ms):.1f}, "
        f"p95 {ms[int(0.95 * (n - 1))]:.1f}, mean {statistics.fmean(ms):.1f}"
    )
    total_sql = sum(sum(v) for v in sql.values())
    print(
        f"  SQL: {sum(len(v) for v in sql.values()) / n:.1f} statements, "
        f"{1000 * total_sql / n:.1f} ms per request"
    )
    print(
        f"  Redis: {len(redis_calls) / n:.1f} round trips, "
        f"{1000 * sum(redis_calls) / n:.1f} ms per request"
    )
    print("\n  steps (ms per request, calls per request; nested steps count in both):")
    for name, times in sorted(steps.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {1000 * sum(times) / n:8.2f} ms {len(times) / n:5.1f}x  {name}")
    print("\n  SQL by shape (ms per request, statements per request):")
    for shape, times in sorted(sql.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {1000 * sum(times) / n:8.2f} ms {len(times) / n:5.1f}x  {shape[:150]}")
    if args.cprofile:
        print_profile(profiler, args.top, f"all {n} requests")


if __name__ == "__main__":
    main()
