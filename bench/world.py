"""The generated benchmark world, written to PostgreSQL with COPY.

Users (5% never active: the cold-start path) with API tokens, providers, items published
over ``days`` days in two-level categories, subscriptions, onboarding interests, then the
interaction history (``bench.history``). Deterministic for a seed, except the clock.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from bench.common import Progress, env_int, pg_connect, say
from bench.history import seed_history
from bench.rows import Catalogue, Copier, copy_text, copy_ts, cumulative, text_pools, weighted_in

WORLD_VERSION = 1  # bump when the generator changes what it writes
PROVIDER_COLUMNS = (
    "name, slug, description, language, country, website, is_sponsored, external_id, "
    "created_at, updated_at"
)
ITEM_COLUMNS = (
    "provider_id, title, summary, body, url, published_at, word_count, "
    "reading_time_minutes, language, status, external_id, created_at, updated_at"
)
USER_COLUMNS = (
    "password, is_superuser, username, first_name, last_name, email, is_staff, is_active, "
    "date_joined"
)


@dataclass(frozen=True)
class World:
    users: int
    items: int
    providers: int
    events: int
    days: int
    seed: int

    @classmethod
    def from_env(cls) -> World:
        return cls(
            users=env_int("BENCH_USERS", 10_000),
            items=env_int("BENCH_ITEMS", 100_000),
            providers=env_int("BENCH_PROVIDERS", 300),
            events=env_int("BENCH_EVENTS", 1_000_000),
            days=env_int("BENCH_DAYS", 60),
            seed=env_int("BENCH_SEED", 42),
        )

    def marker(self) -> dict:
        return {"inbo_bench_world": WORLD_VERSION, **asdict(self)}


def tables():
    from django.apps import apps
    from rest_framework.authtoken.models import Token

    def table(label: str) -> str:
        return apps.get_model(label)._meta.db_table

    item = apps.get_model("reading_app.Item")
    provider = apps.get_model("reading_app.Provider")
    return {
        "category": table("reading_app.Category"),
        "provider": provider._meta.db_table,
        "provider_categories": provider.categories.through._meta.db_table,
        "item": item._meta.db_table,
        "item_categories": item.categories.through._meta.db_table,
        "user": apps.get_model("auth.User")._meta.db_table,
        "token": Token._meta.db_table,
        "subscription": table("reading_app.Subscription"),
        "progress": table("reading_app.ReadingProgress"),
        "saved": table("reading_app.SavedItem"),
        "interest": table("experience_app.UserInterest"),
        "interaction": table("experience_app.ExperienceInteraction"),
        "event": table("features_app.UserEvent"),
    }


def token_for(seed: int, number: int) -> str:
    """The API token of bench user ``number`` (40 hex characters, like DRF's)."""
    return hashlib.sha1(f"inbo-bench:{seed}:{number}".encode()).hexdigest()


def seed_postgres(world: World, database_url: str) -> dict[str, int]:
    """Write the whole world with COPY; returns rows per table."""
    from django.contrib.auth.hashers import make_password

    from experience_app.public import demo_plan as demo
    from experience_app.public import demo_words as words
    from reading_app.public import categories_create_missing

    rng = random.Random(world.seed)
    t = tables()
    anchor = time.time() // 60 * 60
    start = anchor - world.days * 86400
    counts: dict[str, int] = {}

    sections = demo.sections()
    category_ids = categories_create_missing(demo.categories()).ids
    counts["categories"] = len(category_ids)
    pools = text_pools(rng, sections, words)
    popularity = [s.popularity for s in sections]

    conn = pg_connect(database_url, autocommit=True)
    # The rows reference each other consistently by construction: no per-row FK triggers.
    conn.execute("SET session_replication_role = replica")
    conn.execute("SET synchronous_commit = off")
    copier = Copier(conn)

    # Providers: a main subcategory (popular topics have more), sometimes a sibling.
    began = time.monotonic()
    provider_sections: list[list[int]] = []
    provider_weight: list[float] = []
    created = copy_ts(start - 400 * 86400)
    for n in range(1, world.providers + 1):
        main = rng.choices(range(len(sections)), weights=popularity)[0]
        own = [main]
        siblings = [i for i, s in enumerate(sections) if s.top == sections[main].top and i != main]
        if siblings and rng.random() < 0.35:
            own.append(rng.choice(siblings))
        provider_sections.append(own)
        provider_weight.append(rng.lognormvariate(0, 0.8))
        noun = rng.choice(sections[main].nouns)
        name = f"{rng.choice(words.ADJECTIVES)} {noun} {n}"
        slug = f"bench-{n}-{noun.lower().replace(' ', '-')}"
        description = f"A newsletter about {sections[main].sub.lower()} (bench world)."
        copier.add(
            t["provider"],
            PROVIDER_COLUMNS,
            f"{copy_text(name)}\t{copy_text(slug)}\t{copy_text(description)}\ten\tUS\t"
            f"https://{slug}.example.com/\tf\tbench:provider:{n}\t{created}\t{created}\n",
        )
    copier.flush()
    provider_ids = _ids_by_number(conn, t["provider"], "bench:provider:")
    for n, own in enumerate(provider_sections, start=1):
        slugs = {sections[own[0]].top_slug} | {sections[i].slug for i in own}
        for slug in sorted(slugs):
            copier.add(
                t["provider_categories"],
                "provider_id, category_id",
                f"{provider_ids[n]}\t{category_ids[slug]}\n",
            )
    copier.flush()
    counts["providers"] = world.providers
    say(f"providers: {world.providers:,} in {time.monotonic() - began:.1f}s")

    # Items: publication times spread over the window, oldest first (ids follow time).
    began = time.monotonic()
    provider_cum = cumulative(provider_weight)
    ages = sorted((rng.uniform(600, world.days * 86400) for _ in range(world.items)), reverse=True)
    cat = Catalogue()
    item_rows_categories: list[tuple[int, ...]] = []
    progress = Progress("items", world.items)
    for n, age in enumerate(ages, start=1):
        p = weighted_in(provider_cum, 0, world.providers, rng) or 0
        own = provider_sections[p]
        s = own[1] if len(own) > 1 and rng.random() < 0.3 else own[0]
        pool = pools[s]
        picked = rng.sample(pool.sentences, 6)
        body = " ".join(text for text, _ in picked)
        word_count = sum(w for _, w in picked) * 20  # the stored body is an excerpt
        minutes = max(1, round(word_count / 230))
        available = rng.random() >= 0.005
        at = anchor - age
        published = copy_ts(at)
        copier.add(
            t["item"],
            ITEM_COLUMNS,
            f"{provider_ids[p + 1]}\t{copy_text(rng.choice(pool.titles))}\t"
            f"{copy_text(rng.choice(pool.summaries))}\t{copy_text(body)}\t"
            f"https://bench.example.com/p{p + 1}/{n}\t{published}\t{word_count}\t{minutes}\ten\t"
            f"{'published' if available else 'unavailable'}\tbench:item:{n}\t"
            f"{published}\t{published}\n",
        )
        item_rows_categories.append(
            (category_ids[sections[s].top_slug], category_ids[sections[s].slug])
        )
        cat.ts.append(at)
        cat.provider.append(p)
        cat.section.append(s)
        cat.minutes.append(minutes)
        cat.quality.append(rng.lognormvariate(0, 0.9) if available else 0.0)
        progress.update(n)
    copier.flush()
    item_ids = _ids_by_number(conn, t["item"], "bench:item:")
    cat.ids = [item_ids[n] for n in range(1, world.items + 1)]
    for item_id, categories in zip(cat.ids, item_rows_categories, strict=True):
        for category_id in categories:
            copier.add(t["item_categories"], "item_id, category_id", f"{item_id}\t{category_id}\n")
    copier.flush()
    counts["items"] = world.items
    say(f"items: {world.items:,} in {time.monotonic() - began:.1f}s")

    cat.cum = cumulative(cat.quality)
    cat.by_section = [[] for _ in sections]
    cat.by_provider = [[] for _ in range(world.providers)]
    for i, (s, p) in enumerate(zip(cat.section, cat.provider, strict=True)):
        cat.by_section[s].append(i)
        cat.by_provider[p].append(i)
    cat.section_ts = [[cat.ts[i] for i in idx] for idx in cat.by_section]
    cat.section_cum = [cumulative(cat.quality[i] for i in idx) for idx in cat.by_section]
    cat.provider_ts = [[cat.ts[i] for i in idx] for idx in cat.by_provider]

    # Users, their tokens, onboarding interests and subscriptions.
    began = time.monotonic()
    unusable = make_password(None)
    joined = []
    for n in range(1, world.users + 1):
        at = start - rng.uniform(1, 300) * 86400
        joined.append(at)
        copier.add(
            t["user"], USER_COLUMNS, f"{unusable}\tf\tbench_user_{n}\t\t\t\tf\tt\t{copy_ts(at)}\n"
        )
    copier.flush()
    user_ids = _ids_by_number(conn, t["user"], "bench_user_", column="username")
    for n in range(1, world.users + 1):
        copier.add(
            t["token"],
            "key, user_id, created",
            f"{token_for(world.seed, n)}\t{user_ids[n]}\t{copy_ts(joined[n - 1])}\n",
        )
    favourites: list[list[int]] = []
    activity: list[float] = []
    subscriptions: list[list[int]] = []
    counts["subscriptions"] = counts["interests"] = 0
    for n in range(1, world.users + 1):
        uid = user_ids[n]
        favs = list(
            dict.fromkeys(
                rng.choices(range(len(sections)), weights=popularity, k=rng.randint(1, 3))
            )
        )
        favourites.append(favs)
        # Heavy-tailed activity; one user in twenty never did anything (cold start).
        activity.append(0.0 if rng.random() < 0.05 else rng.lognormvariate(0, 1.0))
        if rng.random() < 0.3:
            for slug in sorted({sections[s].slug for s in favs}):
                copier.add(
                    t["interest"],
                    "user_id, category_id, created_at",
                    f"{uid}\t{category_ids[slug]}\t{copy_ts(joined[n - 1])}\n",
                )
                counts["interests"] += 1
        follows: set[int] = set()
        for _ in range(rng.randint(0, 8)):
            if rng.random() < 0.7:
                candidates = [p for p, own in enumerate(provider_sections) if own[0] in favs]
                if candidates:
                    follows.add(rng.choice(candidates))
                    continue
            follows.add(weighted_in(provider_cum, 0, world.providers, rng) or 0)
        active = []
        for p in sorted(follows):
            status = rng.choices(("active", "paused", "cancelled"), (0.9, 0.03, 0.07))[0]
            if status == "active":
                active.append(p)
            at = copy_ts(start - rng.uniform(0, 30) * 86400)
            copier.add(
                t["subscription"],
                "user_id, provider_id, status, created_at, updated_at",
                f"{uid}\t{provider_ids[p + 1]}\t{status}\t{at}\t{at}\n",
            )
            counts["subscriptions"] += 1
        subscriptions.append(active)
    copier.flush()
    counts["users"] = world.users
    say(
        f"users: {world.users:,} with tokens, interests and subscriptions"
        f" in {time.monotonic() - began:.1f}s"
    )

    _prepare_event_log(start, anchor)
    counts.update(
        seed_history(
            world,
            rng,
            conn,
            copier,
            t,
            cat,
            user_ids,
            favourites,
            activity,
            subscriptions,
            start,
            anchor,
        )
    )

    began = time.monotonic()
    for name in sorted(set(t.values())):
        conn.execute(f"VACUUM (ANALYZE) {name}")
    say(f"vacuum analyze: {time.monotonic() - began:.1f}s")
    conn.close()
    return counts


def _prepare_event_log(start: float, anchor: float) -> None:
    """The event log is partitioned by month (features_app): have the app create the
    partitions of the world's months before COPY, as its own write path does."""
    # Imported without a fallback: a missing export must fail here, not leave COPY without
    # partitions (the facade lost this export once in a concurrent edit).
    from features_app.public import ensure_partitions

    first, last = (datetime.fromtimestamp(x, UTC) for x in (start, anchor))
    ensure_partitions(first, last)


def _ids_by_number(conn, table: str, prefix: str, column: str = "external_id") -> dict[int, int]:
    rows = conn.execute(
        f"SELECT {column}, id FROM {table} WHERE {column} LIKE %s", [prefix + "%"]
    ).fetchall()
    return {int(key[len(prefix) :]): pk for key, pk in rows}
