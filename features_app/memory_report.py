"""How many Redis bytes the feature store spends per item and per user.

``manage.py features_memory_report`` builds the counters of a synthetic world (N items,
M users, four weeks of activity) in a scratch Redis database twice and measures both:

1. **compact** — the shipped layout, written by the real ``counters.apply_events`` from
   synthetic ``EventIn`` batches (no PostgreSQL: the item facets are made up here too):
   small hashes per item and per user, shared hashes per day, sorted sets per epoch;
2. **naive** — the same counters with one string key per counter (``INCRBY`` /
   ``INCRBYFLOAT``, same TTLs): every field of every compact key becomes a key of its own
   (``keys.memory_report_naive_counter``), converted key by key from the compact run, so
   both layouts hold exactly the same figures.

Between the two it also measures the day buckets before and after ``migrate_counters``:
rewritten as the v1 layout held them (one hash per day), then moved back to v2 by the
migration itself (``counters_migration.migrate``), which must give the same hashes.

Each layout is measured by ``INFO memory`` (``used_memory`` after minus before: everything,
main dictionary and expiry entries included) and by ``MEMORY USAGE`` (exact per key for the
compact layout, a random sample per kind of key for the naive one), split into the item
side and the user side. The scratch database is flushed before and after, under the same
lock as ``manage.py evaluate_ranking`` (``keys.evaluation_lock``), so the two never share it.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis

from features_app import counters, counters_migration
from features_app.contracts import EventType
from features_app.synthetic_activity import synthetic_world
from inbo import keys, scratch
from inbo import redis as inbo_redis

ITEM_THINGS = (
    "item_counts",
    "item_daily",
    "decayed_clicks",
    "decayed_expected",
    "item_first_seen",
    "dirty_items",
    # Time and place (issue 13): items' hours, every item's hours, opens per country.
    "item_hours",
    "hours",
    "region_clicks",
    "region_totals",
)
USER_THINGS = ("user_counts", "user_affinity", "user_seen", "user_hours")
# How the naive layout increments each compact field (what a one-key-per-counter
# implementation would call); first-seen times are written once.
_FLOAT_THINGS = {
    "user_affinity",
    "decayed_clicks",
    "decayed_expected",
    "region_clicks",
    "region_totals",
}
_SET_THINGS = {"item_first_seen"}
CONFIG_NAMES = (
    "hash-max-listpack-entries",
    "hash-max-listpack-value",
    "zset-max-listpack-entries",
    "zset-max-listpack-value",
    "set-max-intset-entries",
    "set-max-listpack-entries",
    "maxmemory",
    "maxmemory-policy",
)
BATCH_EVENTS = 5000  # events per apply_events call, as a replay sends them
NAIVE_SAMPLE = 5000  # naive keys measured with MEMORY USAGE per kind of key
LOCK_TTL_MS = 15 * 60 * 1000


class MemoryReportError(Exception):
    """The report cannot run (unsafe or busy scratch database)."""


# --- the scratch database ------------------------------------------------------------------


def check_scratch_url(url: str) -> None:
    """Refuse a database the application uses: the report flushes its database."""
    try:
        scratch.check_scratch_url(url)
    except scratch.ScratchUnsafe as exc:
        raise MemoryReportError(
            f"{url} is the database of {exc.setting}; the report flushes its database, so "
            "it needs a scratch one (default REDIS_EVAL_URL)."
        ) from None


@contextmanager
def scratch_database(url: str) -> Iterator[Callable[[], None]]:
    """Hold the scratch database: flushed on the way in and out. Yields ``renew()``."""
    check_scratch_url(url)
    client = redis.Redis.from_url(url, socket_timeout=30, decode_responses=True)
    lock = scratch.ScratchLock(client, ttl_ms=LOCK_TTL_MS)
    try:
        lock.acquire()
    except scratch.ScratchBusy:
        client.close()
        raise MemoryReportError(
            "The scratch database is in use (an evaluate_ranking or another report holds its "
            "lock); wait for it, or pass another --redis-url."
        ) from None
    except scratch.ScratchForeign:
        client.close()
        raise MemoryReportError(
            "The scratch database holds keys that no scratch run wrote; the report flushes "
            "its database, so it refuses this one. Pass an empty one with --redis-url (or empty "
            "this one yourself if its keys are disposable)."
        ) from None

    def renew() -> None:
        try:
            lock.keep()
        except scratch.ScratchLockLost:
            raise MemoryReportError(
                "Lost the scratch database's lock: the run was too slow."
            ) from None

    try:
        yield renew
    finally:
        lock.release()
        client.close()


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class KindFigures:
    """One kind of key (``thing``) in one layout."""

    keys: int = 0
    fields: int = 0
    bytes: int = 0  # MEMORY USAGE, summed (compact) or extrapolated from a sample (naive)
    encodings: Counter[str] = field(default_factory=Counter)


@dataclass
class LayoutFigures:
    name: str
    used_memory: int  # INFO memory used_memory, after minus before
    kinds: dict[str, KindFigures]
    items: int
    users: int

    def side(self, things: tuple[str, ...]) -> int:
        return sum(self.kinds[t].bytes for t in things if t in self.kinds)

    @property
    def keys(self) -> int:
        return sum(k.keys for k in self.kinds.values())

    @property
    def measured(self) -> int:
        return sum(k.bytes for k in self.kinds.values())

    @property
    def overhead_per_key(self) -> float:
        """What MEMORY USAGE does not see (main dictionary buckets, expiry entries,
        allocator rounding), spread over the keys."""
        return max(0, self.used_memory - self.measured) / max(1, self.keys)

    def all_in(self, things: tuple[str, ...]) -> float:
        keys_ = sum(self.kinds[t].keys for t in things if t in self.kinds)
        return self.side(things) + keys_ * self.overhead_per_key

    @property
    def per_item(self) -> float:
        return self.all_in(ITEM_THINGS) / max(1, self.items)

    @property
    def per_user(self) -> float:
        return self.all_in(USER_THINGS) / max(1, self.users)


@dataclass
class MemoryReport:
    items: int
    users: int
    events: Counter[str]
    items_with_counters: int
    users_with_counters: int
    server: dict[str, str]
    compact: LayoutFigures
    naive: LayoutFigures
    what_if: list[WhatIf]
    seconds: float
    daily: DailyLayouts | None = None

    def per_item_with_v1_days(self) -> float:
        """Bytes per item (all in) had the day buckets stayed in the v1 layout."""
        if self.daily is None:
            return self.compact.per_item
        extra = self.daily.v1_bytes - self.daily.v2_bytes
        return self.compact.per_item + extra / max(1, self.items_with_counters)


@dataclass(frozen=True)
class DailyLayouts:
    """The day buckets before (v1: a hash per day) and after ``migrate_counters`` (v2)."""

    v1_keys: int
    v1_bytes: int  # used_memory they take in v1
    v1_encodings: dict[str, int]
    v2_keys: int
    v2_bytes: int  # used_memory they take in v2, as the migration left them
    v2_encodings: dict[str, int]
    fields: int
    moved: int  # fields the migration moved (all of them)
    identical: bool  # the migration gave back exactly the hashes counting wrote
    seconds: float  # the migration's run time


def _thing(key: str) -> str:
    return key.split(":")[2]


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _server(client: redis.Redis) -> dict[str, str]:
    found = {"redis_version": str(client.info("server")["redis_version"])}
    for name in CONFIG_NAMES:
        try:
            found.update({str(k): str(v) for k, v in client.config_get(name).items()})
        except redis.ResponseError:  # CONFIG disabled (managed Redis): report what we can
            found[name] = "?"
    return found


def _feature_keys(client: redis.Redis) -> list[str]:
    return [k for k in client.scan_iter(match=keys.features_pattern(), count=5000)]


def _measure_compact(client: redis.Redis) -> dict[str, KindFigures]:
    kinds: dict[str, KindFigures] = defaultdict(KindFigures)
    names = _feature_keys(client)
    for start in range(0, len(names), 2000):
        chunk = names[start : start + 2000]
        pipe = client.pipeline(transaction=False)
        for name in chunk:
            pipe.memory_usage(name, samples=0)
            pipe.object("encoding", name)
            pipe.type(name)
        replies = pipe.execute()
        pipe = client.pipeline(transaction=False)
        for i, name in enumerate(chunk):
            usage, encoding, kind = replies[3 * i : 3 * i + 3]
            figures = kinds[_thing(name)]
            figures.keys += 1
            figures.bytes += int(usage or 0)
            figures.encodings[str(encoding)] += 1
            if kind == "hash":
                pipe.hlen(name)
            elif kind == "zset":
                pipe.zcard(name)
            else:
                pipe.scard(name)
        for name, n in zip(chunk, pipe.execute(), strict=True):
            kinds[_thing(name)].fields += int(n)
    return dict(kinds)


@dataclass(frozen=True)
class WhatIf:
    """A layout not shipped: one kind's fields regrouped in small hashes of a block of items."""

    thing: str
    block: int  # items per hash
    keys_before: int
    bytes_before: int  # used_memory freed by deleting the shipped keys of this kind
    keys_after: int
    bytes_after: int  # used_memory taken by the same fields, bucketed


# Fields per item in each kind (event types, plus dwell in the lifetime counts): a block of
# items per hash keeps every hash within hash-max-listpack-entries, so it stays a listpack.
# (``item_daily`` is shipped so since keys v2: see :func:`_daily_before_after`.)
_BUCKETABLE = {
    "item_counts": len(EventType) + 1,
    "item_first_seen": 1,
}


def _encodings(client: redis.Redis, names: list[str]) -> dict[str, int]:
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.object("encoding", name)
    return dict(Counter(str(e) for e in pipe.execute()))


def _daily_before_after(client: redis.Redis) -> DailyLayouts:
    """Rewrite the v2 day buckets as v1 (a hash per day, with the TTL the v1 writer gave),
    measure, run the migration, measure again and check it gave back the same hashes."""
    names = [
        k for k in _feature_keys(client) if (keys.item_daily_parse(k) or (0, None))[1] is not None
    ]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.hgetall(name)
    shipped = dict(zip(names, pipe.execute(), strict=True))
    v2_encodings = _encodings(client, names)
    for start in range(0, len(names), 1000):
        client.delete(*names[start : start + 1000])
    empty = _used_memory(client)
    days: dict[int, dict[str, str]] = defaultdict(dict)
    for name, mapping in shipped.items():
        days[keys.item_daily_parse(name)[0]].update(mapping)  # type: ignore[index]
    pipe = client.pipeline(transaction=False)
    for day, mapping in days.items():
        items_ = list(mapping.items())
        for start in range(0, len(items_), 10000):
            pipe.hset(keys.item_daily_legacy(day), mapping=dict(items_[start : start + 10000]))
        pipe.expire(keys.item_daily_legacy(day), 29 * 86400)  # the v1 writer's TTL
    pipe.execute()
    v1_bytes = _used_memory(client) - empty
    v1_names = [keys.item_daily_legacy(day) for day in days]
    v1_encodings = _encodings(client, v1_names)
    migration = counters_migration.migrate(client, batch=500)
    v2_bytes = _used_memory(client) - empty
    after = [k for k in _feature_keys(client) if keys.item_daily_parse(k) is not None]
    pipe = client.pipeline(transaction=False)
    for name in after:
        pipe.hgetall(name)
    migrated = dict(zip(after, pipe.execute(), strict=True))
    return DailyLayouts(
        v1_keys=len(days),
        v1_bytes=v1_bytes,
        v1_encodings=v1_encodings,
        v2_keys=len(after),
        v2_bytes=v2_bytes,
        v2_encodings=v2_encodings,
        fields=sum(len(m) for m in shipped.values()),
        moved=migration.fields,
        identical=migrated == shipped,
        seconds=migration.seconds,
    )


def _what_if_bucketed(client: redis.Redis, thing: str, max_entries: int) -> WhatIf:
    """Measure ``thing`` as shipped and bucketed by item block, then put it back as it was."""
    block = max(1, max_entries // _BUCKETABLE[thing])
    names = [k for k in _feature_keys(client) if _thing(k) == thing]
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.pttl(name)
        pipe.hgetall(name)
    replies = pipe.execute()
    shipped = [(name, int(replies[2 * i]), replies[2 * i + 1]) for i, name in enumerate(names)]

    def write(rows: list[tuple[str, int, dict[str, str]]]) -> None:
        pipe = client.pipeline(transaction=False)
        for name, ttl, mapping in rows:
            items_ = list(mapping.items())
            for start in range(0, len(items_), 10000):
                pipe.hset(name, mapping=dict(items_[start : start + 10000]))
            if ttl > 0:
                pipe.pexpire(name, ttl)
        pipe.execute()

    buckets: dict[str, dict[str, str]] = defaultdict(dict)
    ttls: dict[str, int] = {}
    for name, ttl, mapping in shipped:
        ident = name.split(":")[3]
        for field_name, value in mapping.items():
            if thing == "item_counts":  # one hash per item today: the item id joins the field
                item_id, bucket_ident, key_field = int(ident), "all", f"{ident}:{field_name}"
            else:
                item_id, bucket_ident, key_field = int(field_name.split(":")[0]), ident, field_name
            key = keys.memory_report_bucket(thing, bucket_ident, item_id // block)
            buckets[key][key_field] = value
            ttls[key] = ttl

    full = _used_memory(client)
    for start in range(0, len(names), 1000):
        client.delete(*names[start : start + 1000])
    empty = _used_memory(client)
    write([(key, ttls[key], mapping) for key, mapping in buckets.items()])
    bucketed = _used_memory(client)
    bucket_names = list(buckets)
    for start in range(0, len(bucket_names), 1000):
        client.delete(*bucket_names[start : start + 1000])
    write(shipped)
    return WhatIf(
        thing=thing,
        block=block,
        keys_before=len(names),
        bytes_before=full - empty,
        keys_after=len(buckets),
        bytes_after=bucketed - empty,
    )


def _to_naive(client: redis.Redis, renew: Callable[[], None]) -> dict[str, KindFigures]:
    """Replace every compact counter key by one string key per field; return the figures
    (MEMORY USAGE measured on a random sample of each kind)."""
    kinds: dict[str, KindFigures] = defaultdict(KindFigures)
    samples: dict[str, list[str]] = defaultdict(list)
    rng = random.Random(11)
    names = [k for k in _feature_keys(client) if _thing(k) != "dirty_items"]
    for start in range(0, len(names), 200):
        chunk = names[start : start + 200]
        read = client.pipeline(transaction=False)
        for name in chunk:
            read.type(name)
            read.pttl(name)
        shapes = read.execute()
        read = client.pipeline(transaction=False)
        for i, name in enumerate(chunk):
            if shapes[2 * i] == "zset":
                read.zrange(name, 0, -1, withscores=True)
            else:
                read.hgetall(name)
        contents = read.execute()
        client.delete(*chunk)
        write = client.pipeline(transaction=False)
        queued = 0
        for i, name in enumerate(chunk):
            thing, ident = _thing(name), name.split(":")[3]
            ttl = int(shapes[2 * i + 1])
            pairs = contents[i] if isinstance(contents[i], list) else contents[i].items()
            figures = kinds[thing]
            for member, value in pairs:
                key = keys.memory_report_naive_counter(thing, ident, str(member))
                if thing in _SET_THINGS:
                    write.set(key, value)
                elif thing in _FLOAT_THINGS:
                    write.incrbyfloat(key, float(value))
                else:
                    write.incrby(key, int(value))
                if ttl > 0:
                    write.pexpire(key, ttl)
                figures.keys += 1
                figures.fields += 1
                # Reservoir sampling: every naive key of a kind equally likely measured.
                if len(samples[thing]) < NAIVE_SAMPLE:
                    samples[thing].append(key)
                elif (j := rng.randrange(figures.keys)) < NAIVE_SAMPLE:
                    samples[thing][j] = key
                queued += 1
                if queued >= 20000:
                    write.execute()
                    queued = 0
        write.execute()
        if start % 20000 == 0:
            renew()
    for thing, sample in samples.items():
        pipe = client.pipeline(transaction=False)
        for key in sample:
            pipe.memory_usage(key, samples=0)
            pipe.object("encoding", key)
        replies = pipe.execute()
        sizes = [int(s or 0) for s in replies[0::2]]
        figures = kinds[thing]
        figures.bytes = round(sum(sizes) / len(sizes) * figures.keys)
        for encoding, n in Counter(str(e) for e in replies[1::2]).items():
            figures.encodings[encoding] = round(n / len(sample) * figures.keys)
    return dict(kinds)


def memory_report(
    *,
    url: str,
    items: int,
    users: int,
    days: int = 28,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> MemoryReport:
    """Build the counters of a synthetic world twice in ``url`` and measure both layouts."""
    say = progress or (lambda message: None)
    started = time.monotonic()
    with scratch_database(url) as renew:
        client = redis.Redis.from_url(url, socket_timeout=60, decode_responses=True)
        server = _server(client)
        say(f"generating {items} items / {users} users, {days} days of activity")
        world = synthetic_world(items=items, users=users, days=days, seed=seed)
        say(f"{len(world.events)} events; counting them with counters.apply_events")

        before = _used_memory(client)
        with inbo_redis.use_state_client(url) as state:
            # The application's short timeout is for live requests; a loaded machine may
            # take longer than that over a 5000-event pipeline, and this is a batch job.
            state.connection_pool.connection_kwargs["socket_timeout"] = 30
            for start in range(0, len(world.events), BATCH_EVENTS):
                counters.apply_events(world.events[start : start + BATCH_EVENTS], world.facets)
                if start % (100 * BATCH_EVENTS) == 0:
                    renew()
            state.connection_pool.disconnect()  # its buffers are not the counters' memory
        compact_used = _used_memory(client) - before
        compact_kinds = _measure_compact(client)
        items_with = compact_kinds["item_counts"].keys
        users_with = compact_kinds["user_counts"].keys
        compact = LayoutFigures("compact", compact_used, compact_kinds, items_with, users_with)
        renew()

        say("day buckets: rewriting them as v1, then migrate_counters back to v2")
        daily = _daily_before_after(client)
        renew()

        say("measuring what bucketing the item-side hashes would save (not shipped)")
        max_entries = int(server.get("hash-max-listpack-entries", "128").strip("?") or 128)
        what_if = [_what_if_bucketed(client, thing, max_entries) for thing in _BUCKETABLE]
        renew()

        say("rewriting the same counters with one string key per counter")
        naive_kinds = _to_naive(client, renew)
        if "dirty_items" in compact_kinds:  # not a counter: the same set in both layouts
            naive_kinds["dirty_items"] = compact_kinds["dirty_items"]
        naive_used = _used_memory(client) - before
        naive = LayoutFigures("naive", naive_used, naive_kinds, items_with, users_with)
        client.close()
    return MemoryReport(
        items=items,
        users=users,
        events=Counter(str(e.event_type) for e in world.events),
        items_with_counters=items_with,
        users_with_counters=users_with,
        server=server,
        compact=compact,
        naive=naive,
        what_if=what_if,
        seconds=round(time.monotonic() - started, 1),
        daily=daily,
    )
