"""The benchmark world's Redis counters: checked against the event log, rebuilt from it.

They are built through ``features_app.public.events_count`` — the step ingestion runs after
each commit — from the stored events, oldest first, so they are exactly what the app would
hold had it ingested them.
"""

from __future__ import annotations

from collections.abc import Iterator

from bench.common import Progress, pg_connect, say

COUNT_BATCH = 10_000


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
    with pg_connect(database_url) as conn, conn.cursor(name="bench_events") as cur:
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
    with pg_connect(database_url) as conn:
        return conn.execute(f"SELECT count(*) FROM {_event_table()}").fetchone()[0]
