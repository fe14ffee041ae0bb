"""Seed the benchmark world: users, a catalogue over two months, an event history, counters.

    python -m bench.seed_world [--reseed]

Sizes come from ``BENCH_USERS`` (10,000), ``BENCH_ITEMS`` (100,000), ``BENCH_PROVIDERS``
(300), ``BENCH_EVENTS`` (1,000,000), ``BENCH_DAYS`` (60) and ``BENCH_SEED`` (42).

PostgreSQL rows are written with ``COPY`` (foreign-key triggers off for the load: the rows
are consistent by construction). Every interaction becomes an ``ExperienceInteraction`` and
a ``UserEvent`` with the same ``event_id``, as the interactions endpoint stores them. The
Redis counters are then built from the stored events, in time order, through
``features_app.public.events_count`` — the ingestion path's own counting step — so they are
exactly what the app would hold had it ingested those events.

The world is recorded, once PostgreSQL is complete, as a comment on the database. A run
with the same parameters reuses it; its counters are checked against the event log (totals
per event type over every user and every item) and rebuilt when they differ — Redis runs
without persistence here, so a restart loses them.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import json
import random
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

from bench.common import Progress, env_int, say, setup_django

WORLD_VERSION = 1  # bump when the generator changes what it writes
SOURCE = "bench"
NULL = "\\N"  # COPY text format
COUNT_BATCH = 10_000
FLUSH_LINES = 50_000
LIST_SIZE = 10  # items shown per generated session
# Where a session's items come from, and from how far back.
RECENT_WINDOWS = ((2 * 86400, 0.6), (10 * 86400, 0.4))
EVENTS_PER_SESSION = 11.0  # what the click model below gives on average

# Columns written by COPY, per table.
PROVIDER_COLUMNS = (
    "name",
    "slug",
    "description",
    "language",
    "country",
    "website",
    "is_sponsored",
    "external_id",
    "created_at",
    "updated_at",
)
ITEM_COLUMNS = (
    "provider_id",
    "title",
    "summary",
    "body",
    "url",
    "published_at",
    "word_count",
    "reading_time_minutes",
    "language",
    "status",
    "external_id",
    "created_at",
    "updated_at",
)
USER_COLUMNS = (
    "password",
    "is_superuser",
    "username",
    "first_name",
    "last_name",
    "email",
    "is_staff",
    "is_active",
    "date_joined",
)
EVENT_COLUMNS = (
    "user_id",
    "item_id",
    "event_type",
    "occurred_at",
    "received_at",
    "event_id",
    "source",
    "context",
)
INTERACTION_COLUMNS = (
    "user_id",
    "item_id",
    "interaction_type",
    "section",
    "position",
    "request_id",
    "event_id",
    "occurred_at",
    "received_at",
    "dwell_ms",
)
PROGRESS_COLUMNS = (
    "user_id",
    "item_id",
    "progress",
    "position",
    "started_at",
    "updated_at",
    "completed_at",
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


# --- database administration (before Django touches the database) ---------------------


def _connect(database_url: str, dbname: str | None = None, **kwargs):
    import psycopg

    parts = urlsplit(database_url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname=dbname or parts.path.lstrip("/"),
        **kwargs,
    )


def _database_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/")


def read_marker(database_url: str) -> dict | None:
    """The world recorded on the database, or None (no database, or never completed)."""
    name = _database_name(database_url)
    with _connect(database_url, "postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
    if row is None or not row[0]:
        return None
    try:
        return json.loads(row[0])
    except ValueError:
        return None


def database_exists(database_url: str) -> bool:
    name = _database_name(database_url)
    with _connect(database_url, "postgres", autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()


def recreate_database(database_url: str) -> None:
    from psycopg import sql

    name = _database_name(database_url)
    with _connect(database_url, "postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def write_marker(database_url: str, world: World) -> None:
    from psycopg import sql

    name = _database_name(database_url)
    with _connect(database_url, "postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(json.dumps(world.marker()))
            )
        )


# --- generated text ------------------------------------------------------------------


def _text(value: str) -> str:
    """A value for COPY's text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def _ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _fill(template: str, rng: random.Random, section, words) -> str:
    topic, topic2 = (
        rng.sample(section.terms, 2) if len(section.terms) > 1 else (section.terms[0],) * 2
    )
    return template.format(
        topic=topic,
        Topic=topic[:1].upper() + topic[1:],
        topic2=topic2,
        sub=section.sub,
        org=rng.choice(words.ORGS),
        person=f"{rng.choice(words.FIRST_NAMES)} {rng.choice(words.LAST_NAMES)}",
        city=rng.choice(words.CITIES),
        audience=rng.choice(words.AUDIENCES),
        n=rng.choice((3, 4, 5, 7, 10)),
    )


@dataclass
class Pools:
    titles: list[str]
    summaries: list[str]
    sentences: list[tuple[str, int]]


def _pools(rng: random.Random, sections, words) -> list[Pools]:
    out = []
    for section in sections:
        titles = [_fill(rng.choice(words.TITLES), rng, section, words) for _ in range(150)]
        summaries = [_fill(rng.choice(words.SUMMARIES), rng, section, words) for _ in range(150)]
        sentences = [_fill(rng.choice(words.SENTENCES), rng, section, words) for _ in range(300)]
        out.append(Pools(titles, summaries, [(s, len(s.split())) for s in sentences]))
    return out


# --- the catalogue, the users and their history --------------------------------------


@dataclass
class Catalogue:
    """Items in publication order (oldest first), with what the session model needs."""

    ids: list[int] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    provider: list[int] = field(default_factory=list)  # provider index
    section: list[int] = field(default_factory=list)
    minutes: list[int] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)
    # Cumulative weights over the whole list (unavailable items weigh 0).
    cum: list[float] = field(default_factory=list)
    # Indices into the lists above, per section and per provider, oldest first.
    by_section: list[list[int]] = field(default_factory=list)
    section_ts: list[list[float]] = field(default_factory=list)
    section_cum: list[list[float]] = field(default_factory=list)
    by_provider: list[list[int]] = field(default_factory=list)
    provider_ts: list[list[float]] = field(default_factory=list)


def _cumulative(weights: Iterable[float]) -> list[float]:
    return [0.0, *itertools.accumulate(weights)]


def _weighted_in(cum: list[float], lo: int, hi: int, rng: random.Random) -> int | None:
    """An index in [lo, hi) drawn by weight, or None if they all weigh nothing."""
    if hi <= lo or cum[hi] - cum[lo] <= 0:
        return None
    r = cum[lo] + rng.random() * (cum[hi] - cum[lo])
    return min(max(bisect.bisect_right(cum, r) - 1, lo), hi - 1)


class Copier:
    """Buffers COPY lines per table and writes them in chunks."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.buffers: dict[tuple[str, tuple[str, ...]], list[str]] = {}

    def add(self, table: str, columns: tuple[str, ...], line: str) -> None:
        buffer = self.buffers.setdefault((table, columns), [])
        buffer.append(line)
        if len(buffer) >= FLUSH_LINES:
            self.flush(table, columns)

    def flush(self, table: str | None = None, columns: tuple[str, ...] | None = None) -> None:
        targets = [(table, columns)] if table else list(self.buffers)
        for key in targets:
            lines = self.buffers.get(key)  # type: ignore[arg-type]
            if not lines:
                continue
            name, cols = key
            statement = f"COPY {name} ({', '.join(cols)}) FROM STDIN"
            with self.conn.cursor() as cur, cur.copy(statement) as copy:
                copy.write("".join(lines))
            lines.clear()


def _tables():
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

    from experience_app.datasets import demo
    from experience_app.datasets import demo_words as words
    from reading_app.public import categories_upsert

    rng = random.Random(world.seed)
    t = _tables()
    anchor = time.time() // 60 * 60
    start = anchor - world.days * 86400
    counts: dict[str, int] = {}

    sections = demo.sections()
    category_ids = categories_upsert(demo.categories()).ids
    counts["categories"] = len(category_ids)
    pools = _pools(rng, sections, words)
    popularity = [s.popularity for s in sections]

    conn = _connect(database_url, autocommit=True)
    # The rows reference each other consistently by construction: no per-row FK triggers.
    conn.execute("SET session_replication_role = replica")
    conn.execute("SET synchronous_commit = off")
    copier = Copier(conn)

    # Providers: a main subcategory (popular topics have more), sometimes a sibling.
    began = time.monotonic()
    provider_sections: list[list[int]] = []
    provider_weight: list[float] = []
    created = _ts(start - 400 * 86400)
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
            f"{_text(name)}\t{_text(slug)}\t{_text(description)}\ten\tUS\t"
            f"https://{slug}.example.com/\tf\tbench:provider:{n}\t{created}\t{created}\n",
        )
    copier.flush()
    provider_ids = _ids_by_number(conn, t["provider"], "bench:provider:")
    for n, own in enumerate(provider_sections, start=1):
        slugs = {sections[own[0]].top_slug} | {sections[i].slug for i in own}
        for slug in sorted(slugs):
            copier.add(
                t["provider_categories"],
                ("provider_id", "category_id"),
                f"{provider_ids[n]}\t{category_ids[slug]}\n",
            )
    copier.flush()
    counts["providers"] = world.providers
    say(f"providers: {world.providers:,} in {time.monotonic() - began:.1f}s")

    # Items: publication times spread over the window, oldest first (ids follow time).
    began = time.monotonic()
    provider_cum = _cumulative(provider_weight)
    ages = sorted((rng.uniform(600, world.days * 86400) for _ in range(world.items)), reverse=True)
    cat = Catalogue()
    item_rows_categories: list[tuple[int, ...]] = []
    progress = Progress("items", world.items)
    for n, age in enumerate(ages, start=1):
        p = _weighted_in(provider_cum, 0, world.providers, rng) or 0
        own = provider_sections[p]
        s = own[1] if len(own) > 1 and rng.random() < 0.3 else own[0]
        pool = pools[s]
        picked = rng.sample(pool.sentences, 6)
        body = " ".join(text for text, _ in picked)
        word_count = sum(w for _, w in picked) * 20  # the stored body is an excerpt
        minutes = max(1, round(word_count / 230))
        available = rng.random() >= 0.005
        ts = anchor - age
        published = _ts(ts)
        copier.add(
            t["item"],
            ITEM_COLUMNS,
            f"{provider_ids[p + 1]}\t{_text(rng.choice(pool.titles))}\t"
            f"{_text(rng.choice(pool.summaries))}\t{_text(body)}\t"
            f"https://bench.example.com/p{p + 1}/{n}\t{published}\t{word_count}\t{minutes}\ten\t"
            f"{'published' if available else 'unavailable'}\tbench:item:{n}\t"
            f"{published}\t{published}\n",
        )
        item_rows_categories.append(
            (category_ids[sections[s].top_slug], category_ids[sections[s].slug])
        )
        cat.ts.append(ts)
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
            copier.add(
                t["item_categories"], ("item_id", "category_id"), f"{item_id}\t{category_id}\n"
            )
    copier.flush()
    counts["items"] = world.items
    say(f"items: {world.items:,} in {time.monotonic() - began:.1f}s")

    cat.cum = _cumulative(cat.quality)
    cat.by_section = [[] for _ in sections]
    cat.by_provider = [[] for _ in range(world.providers)]
    for i, (s, p) in enumerate(zip(cat.section, cat.provider, strict=True)):
        cat.by_section[s].append(i)
        cat.by_provider[p].append(i)
    cat.section_ts = [[cat.ts[i] for i in idx] for idx in cat.by_section]
    cat.section_cum = [_cumulative(cat.quality[i] for i in idx) for idx in cat.by_section]
    cat.provider_ts = [[cat.ts[i] for i in idx] for idx in cat.by_provider]

    # Users, their tokens, onboarding interests and subscriptions.
    began = time.monotonic()
    unusable = make_password(None)
    joined = []
    for n in range(1, world.users + 1):
        at = start - rng.uniform(1, 300) * 86400
        joined.append(at)
        copier.add(
            t["user"], USER_COLUMNS, f"{unusable}\tf\tbench_user_{n}\t\t\t\tf\tt\t{_ts(at)}\n"
        )
    copier.flush()
    user_ids = _ids_by_number(conn, t["user"], "bench_user_", column="username")
    for n in range(1, world.users + 1):
        copier.add(
            t["token"],
            ("key", "user_id", "created"),
            f"{token_for(world.seed, n)}\t{user_ids[n]}\t{_ts(joined[n - 1])}\n",
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
                    ("user_id", "category_id", "created_at"),
                    f"{uid}\t{category_ids[slug]}\t{_ts(joined[n - 1])}\n",
                )
                counts["interests"] += 1
        follows: set[int] = set()
        for _ in range(rng.randint(0, 8)):
            if rng.random() < 0.7:
                candidates = [p for p, own in enumerate(provider_sections) if own[0] in favs]
                if candidates:
                    follows.add(rng.choice(candidates))
                    continue
            follows.add(_weighted_in(provider_cum, 0, world.providers, rng) or 0)
        active = []
        for p in sorted(follows):
            status = rng.choices(("active", "paused", "cancelled"), (0.9, 0.03, 0.07))[0]
            if status == "active":
                active.append(p)
            at = _ts(start - rng.uniform(0, 30) * 86400)
            copier.add(
                t["subscription"],
                ("user_id", "provider_id", "status", "created_at", "updated_at"),
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
        _seed_history(
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
    """The event log may be partitioned by month (features_app): have the app create the
    partitions of the world's months before COPY, as its own write path does."""
    try:
        from features_app import partitions
    except ImportError:  # an event log without partitions
        return
    first, last = (datetime.fromtimestamp(x, UTC) for x in (start, anchor))
    partitions.ensure_partitions(first, last)


def _ids_by_number(conn, table: str, prefix: str, column: str = "external_id") -> dict[int, int]:
    rows = conn.execute(
        f"SELECT {column}, id FROM {table} WHERE {column} LIKE %s", [prefix + "%"]
    ).fetchall()
    return {int(key[len(prefix) :]): pk for key, pk in rows}


def _seed_history(
    world, rng, conn, copier, t, cat, user_ids, favourites, activity, subscriptions, start, anchor
) -> dict[str, int]:
    """Sessions of ten items shown together, clicked by taste, quality and subscription;
    clicks become reads, saves and shares, some impressions dismissals. Each interaction is
    written both as an ExperienceInteraction and as a UserEvent with the same event_id."""
    began = time.monotonic()
    user_cum = _cumulative(activity)
    last = anchor - 1
    mean_quality = sum(cat.quality) / max(len(cat.quality), 1)
    progress_rows: dict[tuple[int, int], tuple] = {}
    saves: dict[tuple[int, int], float] = {}
    negative: set[tuple[int, int]] = set()
    written = sessions_done = 0
    progress = Progress("events", world.events)

    def emit(uid, item, kind, at, request, position, dwell=None):
        nonlocal written
        at = min(at, last)
        stamp = _ts(at)
        received = stamp  # received as it happened: the world has no offline clients
        event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        context = f'{{"request_id": "{request}", "section": "for_you", "position": {position}'
        context += f', "dwell_ms": {dwell}}}' if dwell is not None else "}"
        copier.add(
            t["event"],
            EVENT_COLUMNS,
            f"{uid}\t{item}\t{kind}\t{stamp}\t{received}\t{event_id}\t{SOURCE}\t{context}\n",
        )
        copier.add(
            t["interaction"],
            INTERACTION_COLUMNS,
            f"{uid}\t{item}\t{kind}\tfor_you\t{position}\t{request}\t{event_id}\t{stamp}\t"
            f"{received}\t{dwell if dwell is not None else NULL}\n",
        )
        written += 1

    while written < world.events:
        remaining = world.events - written
        planned = max(200, int(remaining / EVENTS_PER_SESSION * 1.02))
        sessions = sorted(
            (rng.uniform(start, last), _weighted_in(user_cum, 0, world.users, rng) or 0)
            for _ in range(planned)
        )
        for ts, u in sessions:
            uid = user_ids[u + 1]
            favs, subs = favourites[u], subscriptions[u]
            span = (
                RECENT_WINDOWS[0][0]
                if rng.random() < RECENT_WINDOWS[0][1]
                else RECENT_WINDOWS[1][0]
            )
            lo, hi = bisect.bisect_left(cat.ts, ts - span), bisect.bisect_right(cat.ts, ts)
            if hi - lo < LIST_SIZE * 3:
                continue
            shown: list[int] = []
            for _ in range(LIST_SIZE * 3):
                if len(shown) >= LIST_SIZE:
                    break
                r = rng.random()
                index = None
                if r < 0.45 and favs:
                    s = rng.choice(favs)
                    a = bisect.bisect_left(cat.section_ts[s], ts - span)
                    b = bisect.bisect_right(cat.section_ts[s], ts)
                    k = _weighted_in(cat.section_cum[s], a, b, rng)
                    index = cat.by_section[s][k] if k is not None else None
                elif r < 0.6 and subs:
                    p = rng.choice(subs)
                    a = bisect.bisect_left(cat.provider_ts[p], ts - span)
                    b = bisect.bisect_right(cat.provider_ts[p], ts)
                    if b > a:
                        index = cat.by_provider[p][rng.randrange(a, b)]
                if index is None:
                    index = _weighted_in(cat.cum, lo, hi, rng)
                if (
                    index is None
                    or index in shown
                    or cat.quality[index] <= 0
                    or (uid, cat.ids[index]) in negative
                ):
                    continue
                shown.append(index)
            request = uuid.UUID(int=rng.getrandbits(128), version=4)
            for position, index in enumerate(shown):
                item = cat.ids[index]
                at = ts + position * 0.3
                emit(uid, item, "impression", at, request, position)
                chance = 0.035 * min(cat.quality[index] / mean_quality, 4.0)
                chance *= 3.0 if cat.section[index] in favs else 0.6
                chance *= 1.5 if cat.provider[index] in subs else 1.0
                if rng.random() < min(chance, 0.6):
                    clicked = at + 2 + rng.expovariate(1 / 30)
                    emit(uid, item, "click", clicked, request, position)
                    key = (uid, item)
                    if rng.random() < 0.45:
                        dwell = int(cat.minutes[index] * 60_000 * rng.uniform(0.6, 1.2))
                        done = clicked + dwell / 1000
                        emit(uid, item, "read", done, request, position, dwell)
                        progress_rows[key] = (1.0, 10_000, clicked, min(done, last), done)
                    elif key not in progress_rows or progress_rows[key][4] is None:
                        share = rng.uniform(0.05, 0.9)
                        touched = clicked + rng.uniform(10, 600)
                        progress_rows[key] = (
                            share,
                            int(share * 10_000),
                            clicked,
                            min(touched, last),
                            None,
                        )
                    if rng.random() < 0.06:
                        emit(uid, item, "save", clicked + 5, request, position)
                        saves.setdefault(key, min(clicked + 5, last))
                    if rng.random() < 0.01:
                        emit(uid, item, "share", clicked + 8, request, position)
                elif rng.random() < 0.012:
                    emit(uid, item, "dismiss", at + 1, request, position)
                    negative.add((uid, item))
                elif rng.random() < 0.002:
                    emit(uid, item, "hide", at + 1, request, position)
                    negative.add((uid, item))
            sessions_done += 1
            progress.update(written)
            if written >= world.events:
                break
    copier.flush()
    progress.update(written, force=True)
    say(f"events: {written:,} in {sessions_done:,} sessions, {time.monotonic() - began:.1f}s")

    began = time.monotonic()
    for (uid, item), (share, position, started, updated, completed) in progress_rows.items():
        done = _ts(completed) if completed is not None else NULL
        copier.add(
            t["progress"],
            PROGRESS_COLUMNS,
            f"{uid}\t{item}\t{share:.4f}\t{position}\t{_ts(started)}\t{_ts(updated)}\t{done}\n",
        )
    for (uid, item), at in saves.items():
        copier.add(t["saved"], ("user_id", "item_id", "created_at"), f"{uid}\t{item}\t{_ts(at)}\n")
    copier.flush()
    say(
        f"reading progress: {len(progress_rows):,}, saved: {len(saves):,}"
        f" in {time.monotonic() - began:.1f}s"
    )
    return {
        "events": written,
        "interactions": written,
        "sessions": sessions_done,
        "reading_progress": len(progress_rows),
        "saved_items": len(saves),
    }


# --- Redis counters ------------------------------------------------------------------


def _event_table() -> str:
    from django.apps import apps

    return apps.get_model("features_app.UserEvent")._meta.db_table


def _event_types() -> list[str]:
    from features_app.contracts import EventType

    return [t.value for t in EventType]


def counters_check() -> tuple[bool, str]:
    """Do the Redis counters hold every stored event? Totals per event type, summed over
    every user's and every item's counts, must equal the log's."""
    from django.db import connection

    from inbo import keys
    from inbo import redis as inbo_redis

    table = _event_table()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT event_type, count(*) FROM {table} GROUP BY 1")
        expected = {kind: n for kind, n in cursor.fetchall()}
        cursor.execute(f"SELECT DISTINCT user_id FROM {table}")
        users = [row[0] for row in cursor.fetchall()]
        cursor.execute(f"SELECT DISTINCT item_id FROM {table}")
        items = [row[0] for row in cursor.fetchall()]
    client = inbo_redis.state()
    types = set(_event_types())
    problems = []
    for what, ids, key in (("users", users, keys.user_counts), ("items", items, keys.item_counts)):
        totals: dict[str, int] = {}
        for chunk in _chunks(ids, 10_000):
            pipe = client.pipeline(transaction=False)
            for i in chunk:
                pipe.hgetall(key(i))
            for counts in pipe.execute():
                for kind, n in counts.items():
                    if kind in types:
                        totals[kind] = totals.get(kind, 0) + int(n)
        if totals != expected:
            problems.append(f"{what}: redis {totals} != log {expected}")
    if not expected:
        return False, "no events"
    return not problems, "; ".join(problems) or f"{sum(expected.values()):,} events counted"


def _chunks(values: list, size: int) -> Iterator[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def counters_build(database_url: str) -> int:
    """Empty the benchmark's state database, then count every stored event, oldest first,
    through features_app.public.events_count (what ingestion calls after each commit)."""
    from features_app.public import EventIn, EventType, events_count
    from inbo import redis as inbo_redis

    client = inbo_redis.state()
    client.flushdb()
    total = _count_rows(database_url)
    progress = Progress("counters", total)
    done = 0
    with _connect(database_url) as conn, conn.cursor(name="bench_events") as cur:
        cur.itersize = 20_000
        cur.execute(
            f"SELECT user_id, item_id, event_type, occurred_at, event_id, source, context "
            f"FROM {_event_table()} ORDER BY occurred_at, id"
        )
        batch: list = []
        for user_id, item_id, kind, at, event_id, source, context in cur:
            batch.append(EventIn(user_id, item_id, EventType(kind), at, event_id, source, context))
            if len(batch) >= COUNT_BATCH:
                _count(events_count, batch)
                done += len(batch)
                batch = []
                progress.update(done)
        if batch:
            _count(events_count, batch)
            done += len(batch)
    progress.update(done, force=True)
    say(
        f"counters: {done:,} events counted in {progress.elapsed():.1f}s"
        f" ({done / max(progress.elapsed(), 1e-9):,.0f} events/s)"
    )
    return done


def _count(events_count, batch) -> None:
    if not events_count(batch):
        raise SystemExit("bench: Redis refused the counters (see the log above)")


def _count_rows(database_url: str) -> int:
    with _connect(database_url) as conn:
        return conn.execute(f"SELECT count(*) FROM {_event_table()}").fetchone()[0]


# --- entry point ---------------------------------------------------------------------


def world_summary() -> dict[str, int]:
    from django.db import connection

    t = _tables()
    out = {}
    with connection.cursor() as cursor:
        for label in (
            "user",
            "provider",
            "item",
            "event",
            "interaction",
            "subscription",
            "progress",
            "saved",
            "interest",
        ):
            # Planner estimates would do for the big tables, but exact counts are cheap here.
            cursor.execute(f"SELECT count(*) FROM {t[label]}")
            out[label] = cursor.fetchone()[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reseed", action="store_true", help="drop the world and seed again")
    args = parser.parse_args()
    env = setup_django()
    from django.core.management import call_command
    from django.db import connection

    database_url = env["DATABASE_URL"]
    world = World.from_env()
    name = _database_name(database_url)
    marker = read_marker(database_url) if database_exists(database_url) else None
    began = time.monotonic()
    if args.reseed or marker != world.marker():
        if marker is not None and not args.reseed:
            say(f"{name} holds another world ({marker}); seeding again")
        say(f"creating database {name} (PostgreSQL), Redis {env['REDIS_STATE_URL']} for state")
        connection.close()
        recreate_database(database_url)
        call_command("migrate", interactive=False, verbosity=0)
        say(f"seeding {world}")
        seed_postgres(world, database_url)
        connection.close()
        write_marker(database_url, world)
        say(f"PostgreSQL world written in {time.monotonic() - began:.0f}s")
        counters_build(database_url)
    else:
        call_command("migrate", interactive=False, verbosity=0)  # newer migrations, if any
        ok, detail = counters_check()
        if ok:
            say(f"reusing the world in {name} ({world}); counters match the log ({detail})")
        else:
            say(f"reusing the world in {name}; counters differ from the log ({detail}): rebuild")
            counters_build(database_url)
    ok, detail = counters_check()
    if not ok:
        raise SystemExit(f"bench: counters do not match the event log: {detail}")
    summary = world_summary()
    say("world: " + ", ".join(f"{k} {v:,}" for k, v in summary.items()))
    say(f"ready in {time.monotonic() - began:.0f}s")


if __name__ == "__main__":
    main()
