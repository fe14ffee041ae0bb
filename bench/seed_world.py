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
import json
import time

from bench.common import database_name, pg_connect, say, setup_django
from bench.counters import counters_build, counters_check
from bench.world import World, seed_postgres, tables

# --- database administration (before Django touches the database) ---------------------


def read_marker(database_url: str) -> dict | None:
    """The world recorded on the database, or None (no database, or never completed)."""
    name = database_name(database_url)
    with pg_connect(database_url, "postgres", autocommit=True) as conn:
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
    name = database_name(database_url)
    with pg_connect(database_url, "postgres", autocommit=True) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()


def recreate_database(database_url: str) -> None:
    from psycopg import sql

    name = database_name(database_url)
    with pg_connect(database_url, "postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def write_marker(database_url: str, world: World) -> None:
    from psycopg import sql

    name = database_name(database_url)
    with pg_connect(database_url, "postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(name), sql.Literal(json.dumps(world.marker()))
            )
        )


# --- entry point ---------------------------------------------------------------------


def world_summary() -> dict[str, int]:
    from django.db import connection

    t = tables()
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
    name = database_name(database_url)
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
