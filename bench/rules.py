"""What the business rules cost a feed build (rules_app, docs/RULES.md).

    DATABASE_URL=postgres://... REDIS_STATE_URL=redis://127.0.0.1:PORT/11 python -m bench.rules

Creates a throwaway database (``<name>_rules_bench``, migrated, dropped at the end) and
flushes the Redis state database it is given (refused: 0-3 and 12-15), seeds a world whose
feed fills five sections of 50 items (600 items of 40 newsletters in 12 topics, text
embeddings for every item, subscriptions, reads in progress, a crowd's clicks), and builds
one reader's home in process (``home_json`` with the cached feed deleted first, so every
call builds the feed: the cold path, where rules run):

1. with 20 active rules (2 sponsored campaigns, 5 blocks of which 2 keywords, 12 boosts, 1
   diversity rule with caps and MMR) and without rules (the build's calls into rules_app
   pass the feed through untouched), alternating round by round in one process;
2. times the rules' own calls inside the builds with rules (``campaign_item_ids``,
   ``adjust_ranked``, ``apply``: what a build spends in rules_app); ``--profile`` prints
   where they spend it; ``--unseen`` empties the rules' memos of titles and embeddings
   before each build with rules (the builds of one reader otherwise always hit them).

Prints the median and p95 of each, the sizes of the sections built (the depth of each
section; its first page is sent), and the ratio of the cold home with rules to the one without,
from the same run. Nothing is asserted: figures only.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import random
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
# Title words; "war" and "crypto giveaway" are blocked keywords.
WORDS = "rocket launch market climate war peace data python garden recipe crypto giveaway"
WORDS += " football election startup science space health music film travel design law"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _figures(label: str, values: list[float]) -> str:
    return (
        f"{label:<34} median {statistics.median(values):7.2f} ms   "
        f"p95 {_percentile(values, 0.95):7.2f} ms   (n={len(values)})"
    )


def seed(now):
    """The world: returns (reader id, staff id, providers, categories, items)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from features_app.contracts import EventIn, EventType
    from features_app.public import EMBEDDING_MODEL_VERSION, events_ingest
    from reading_app import public as reading
    from reading_app.contracts import (
        CategoryIn,
        ItemIn,
        ProviderIn,
        ReadingProgressIn,
        SubscriptionIn,
    )

    rng = random.Random(7)
    users = get_user_model()
    reader = users.objects.create_user("bench-reader", password="x")
    staff = users.objects.create_user("bench-staff", password="x", is_staff=True)
    crowd = [users.objects.create_user(f"bench-crowd-{i}", password="x") for i in range(30)]
    slugs = [f"topic-{i}" for i in range(12)]
    reading.categories_create_missing([CategoryIn(s, s.title()) for s in slugs])
    providers = reading.providers_create_missing(
        [
            ProviderIn(f"bench-p{i}", f"bench-p{i}", f"Bench {i}", category_slugs=(slugs[i % 12],))
            for i in range(40)
        ]
    ).ids
    items_in = []
    for i in range(600):
        title = " ".join(rng.choice(WORDS.split()) for _ in range(5)).capitalize()
        items_in.append(
            ItemIn(
                f"bench-i{i}",
                f"bench-p{i % 40}",
                title,
                now - timedelta(hours=1 + i * 0.8),
                summary="A week of news.",
                body="Words " * 200,
                category_slugs=(slugs[i % 12], slugs[(i * 7) % 12]),
            )
        )
    items = reading.items_create_missing(items_in).ids
    item_ids = [items[f"bench-i{i}"] for i in range(600)]
    provider_ids = [providers[f"bench-p{i}"] for i in range(40)]
    reading.subscriptions_bulk_create(
        [SubscriptionIn(reader.id, provider_ids[i]) for i in range(6)]
    )
    reading.reading_progress_bulk_create(
        [
            ReadingProgressIn(
                reader.id, item_ids[100 + i], 0.3, updated_at=now - timedelta(hours=i)
            )
            for i in range(60)
        ]
    )
    events = []
    for n, user in enumerate(crowd):
        for item in rng.sample(item_ids[:300], 25):
            events.append(
                EventIn(user.id, item, EventType.CLICK, now - timedelta(minutes=n), uuid.uuid4())
            )
        events.append(EventIn(user.id, item_ids[5], EventType.CLICK, now, uuid.uuid4()))
    events.append(EventIn(reader.id, item_ids[5], EventType.CLICK, now, uuid.uuid4()))
    for start in range(0, len(events), 500):
        events_ingest(events[start : start + 500])
    # Random unit vectors stand in for text embeddings: MMR pays its query and its maths.
    import numpy as np

    vectors = np.random.default_rng(7).normal(size=(len(item_ids), 384)).astype("<f4")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO features_app_itemembedding (item_id, model_version, vector, text_hash,"
            " updated_at) VALUES (%s, %s, %s, 'bench', now())",
            [
                (item, EMBEDDING_MODEL_VERSION, vectors[i].tobytes())
                for i, item in enumerate(item_ids)
            ],
        )
    return reader.id, staff, provider_ids, item_ids


def rule_specs(providers, categories, items, now) -> list[dict]:
    """The 20 rules' data as the API takes it: 2 campaigns, 5 blocks (2 of them keywords),
    12 boosts (3 dated) and 1 diversity rule, on the given ids (``providers``: 40,
    ``categories``: 12, ``items``: 500). bench/personalization.py uses them too."""
    day = timedelta(days=1)
    paced = {
        "starts_at": now - day,
        "ends_at": now + 9 * day,
        "budget": 10**8,
        "user_cap_per_day": 10**6,
        "relevance_floor": -100.0,
    }
    specs: list[dict] = [
        {"kind": "sponsored", "provider_id": providers[20], "positions": [1], **paced},
        {"kind": "sponsored", "item_ids": items[400:405], "positions": [5], **paced},
        {"kind": "block", "target": "provider", "target_id": providers[30]},
        {"kind": "block", "target": "provider", "target_id": providers[31]},
        {"kind": "block", "target": "item", "target_id": items[7]},
        {"kind": "block", "target": "keyword", "keyword": "crypto giveaway"},
        {"kind": "block", "target": "keyword", "keyword": "war"},
    ]
    for i in range(12):
        target = ("provider", "category", "item")[i % 3]
        target_id = {"provider": providers[i], "category": categories[i], "item": items[50 + i]}
        specs.append(
            {
                "kind": "boost",
                "target": target,
                "target_id": target_id[target],
                "mode": "multiply" if i % 2 else "add",
                "value": 1.3 if i % 2 else 0.2,
                "starts_at": now - day if i % 4 == 0 else None,
                "ends_at": now + day if i % 4 == 0 else None,
            }
        )
    specs.append(
        {"kind": "diversity", "max_per_provider": 3, "max_per_category": 4, "mmr_lambda": 0.7}
    )
    return specs


def twenty_rules(staff, providers, items, now) -> list[int]:
    """2 campaigns, 5 blocks, 12 boosts and 1 diversity rule, as the API creates them."""
    from reading_app import public as reading
    from rules_app.public import rule_create

    slugs = [f"topic-{i}" for i in range(12)]
    by_slug = reading.category_ids_by_slug(slugs)
    specs = rule_specs(providers, [by_slug[s] for s in slugs], items, now)
    return [rule_create({"name": f"bench {n}", **s}, user=staff) for n, s in enumerate(specs)]


def measure(user_id: int, now, rounds: int) -> tuple[list[float], list[int]]:
    """Cold home responses (the cached feed deleted first: every call builds), in ms, and
    the sections' depths of the last feed built (its cached snapshot)."""
    import json

    from experience_app.public import home_json
    from inbo import keys
    from inbo import redis as inbo_redis

    times = []
    sizes: list[int] = []
    for _ in range(rounds):
        inbo_redis.state().delete(keys.feed(user_id))
        start = time.perf_counter()
        body = home_json(user_id, now=now)
        times.append((time.perf_counter() - start) * 1000)
    assert json.loads(body)["cached"] is False
    client = inbo_redis.state()
    version = json.loads(client.get(keys.feed(user_id)))["version"]
    snapshot = json.loads(client.get(keys.feed_snapshot(user_id, version)))
    sizes = [len(s["items"]) for s in snapshot["sections"]]
    return times, sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--profile", action="store_true", help="cProfile the rules' calls")
    parser.add_argument(
        "--unseen",
        action="store_true",
        help="forget the rules' memos of titles and embeddings before each build with rules:"
        " a process that has not seen the candidates (new items, another reader's)",
    )
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inbo.settings")
    state = os.environ.get("REDIS_STATE_URL", "")
    db = int(urlsplit(state).path.lstrip("/") or "0") if state else 0
    if not state or db in {0, 1, 2, 3, 12, 13, 14, 15}:
        sys.exit("bench.rules: set REDIS_STATE_URL to a scratch database (not 0-3, 12-15)")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from inbo import redis as inbo_redis
    from rules_app import public as rules

    inbo_redis.state().flushdb()
    name = connection.settings_dict["NAME"]
    connection.settings_dict["TEST"]["NAME"] = f"{name}_rules_bench"
    old = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        now = timezone.now()
        print("seeding...", flush=True)
        user_id, staff, providers, items = seed(now)
        rules.forget()
        measure(user_id, now, 5)  # warm: imports, facets cache, connections
        _, sizes_off = measure(user_id, now, 1)
        made = twenty_rules(staff, providers, items, now)
        count = len(made)
        rules.forget()
        spent: dict[str, list[float]] = {"campaign_item_ids": [], "adjust_ranked": [], "apply": []}
        originals = {n: getattr(rules, n) for n in spent}
        # Without rules: the hooks pass the feed through untouched (what the build was
        # before rules_app), so both kinds of build interleave in one process.
        passthrough = {
            "campaign_item_ids": lambda now: [],
            "adjust_ranked": lambda ranked, facets, now: (ranked, 0),
            "apply": lambda sections, **kw: sections,
        }
        profiler = cProfile.Profile() if args.profile else None

        def timed(fn_name):
            def call(*a, **kw):
                start = time.perf_counter()
                if profiler is not None:
                    profiler.enable()
                try:
                    return originals[fn_name](*a, **kw)
                finally:
                    if profiler is not None:
                        profiler.disable()
                    spent[fn_name].append((time.perf_counter() - start) * 1000)

            return call

        measure(user_id, now, 3)  # loads the rules once
        for n in spent:
            spent[n].clear()
        # Full collections (generation 2) pause whatever code runs when they start: count
        # them, so that a p95 they make is read as such.
        pauses: list[float] = []
        started: list[float] = []

        def on_gc(phase, info):
            if info["generation"] == 2:
                if phase == "start":
                    started.append(time.perf_counter())
                elif started:
                    pauses.append((time.perf_counter() - started.pop()) * 1000)

        gc.callbacks.append(on_gc)
        on: list[float] = []
        off: list[float] = []
        sizes_on: list[int] = []
        for _ in range(args.rounds):
            for n in spent:
                setattr(rules, n, passthrough[n])
            off += measure(user_id, now, 1)[0]
            for n in spent:
                setattr(rules, n, timed(n))
            if args.unseen:
                rules.forget_memos()
            times, sizes_on = measure(user_id, now, 1)
            on += times
        gc.callbacks.remove(on_gc)
        for n, fn in originals.items():
            setattr(rules, n, fn)
        per_build = [sum(v) for v in zip(*spent.values(), strict=True)]
        print(f"sections without rules: {sizes_off}; with {count} rules: {sizes_on}")
        print(_figures("cold home, no rules", off))
        print(_figures(f"cold home, {count} active rules", on))
        for n, values in spent.items():
            print(_figures(f"  of which rules.{n}", values))
        print(_figures("  of which rules, all calls", per_build))
        ratio = statistics.median(on) / statistics.median(off)
        share = statistics.median(per_build) / statistics.median(on)
        print(f"ratio with/without rules (medians): {ratio:.2f}x; rules' share: {share:.0%}")
        if pauses:
            print(
                f"full GC collections during the rounds: {len(pauses)}, "
                f"{statistics.median(pauses):.0f} ms each (median): they make the p95s"
            )
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    finally:
        connection.creation.destroy_test_db(old, verbosity=0)


if __name__ == "__main__":
    main()
