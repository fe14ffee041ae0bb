"""Where the benchmark's data lives, and the guards that keep it there.

The benchmark has its own PostgreSQL database (``inbo_bench``) and its own Redis server
(port 6479, databases 4/5/6 for broker/cache/state), which ``bench/run.sh`` starts and
stops: on a machine that other people's test runs share, a database number on the common
Redis server is never safe from someone else's ``FLUSHDB``, and the counters of a million
events must survive between runs (the server saves them to var/bench/redis/ on shutdown).

Settings come from ``BENCH_*`` variables only: a ``DATABASE_URL`` or ``REDIS_*_URL``
exported for development is overridden, never used, so a benchmark run cannot touch the
development database (``inbo``) or Redis databases 0-3 and 13-15.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var" / "bench"

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/inbo_bench"
REDIS_PORT = os.environ.get("BENCH_REDIS_PORT", "6479")
DEFAULT_REDIS = {"BROKER": 4, "CACHE": 5, "STATE": 6}
RESERVED_REDIS_DBS = frozenset({0, 1, 2, 3, 13, 14, 15})
RESERVED_DATABASES = frozenset({"inbo", "postgres", "template0", "template1"})


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def bench_env() -> dict[str, str]:
    """The environment of every benchmark process: the seeder, the server, the driver."""
    env = {
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL),
        "DJANGO_SETTINGS_MODULE": "inbo.settings",
        "INBO_ENV": "local",
        "DEBUG": "false",
        # Plain HTTP on loopback: no HTTPS redirect, no secure-cookie settings.
        "SECURE_TRANSPORT": "false",
        # No collectstatic needed; the API serves no static files.
        "STATIC_MANIFEST": "false",
        "INBO_BENCH_ENDPOINTS": "true",
        # The load comes from loopback for a few users, with tokens seeded on the users' join
        # dates: rate limits (empty: off) and token expiry would be measured, not the endpoints.
        **{
            f"THROTTLE_RATE_{scope}": ""
            for scope in ("AUTH", "SEARCH", "SEARCH_CLICK", "INTERACTIONS")
        },
        "TOKEN_TTL_HOURS": "0",
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    }
    for role, db in DEFAULT_REDIS.items():
        env[f"REDIS_{role}_URL"] = os.environ.get(
            f"BENCH_REDIS_{role}_URL", f"redis://127.0.0.1:{REDIS_PORT}/{db}"
        )
    env["CELERY_BROKER_URL"] = env["REDIS_BROKER_URL"]
    return env


def check_targets(env: dict[str, str]) -> None:
    """Refuse to run against anything but a benchmark database and spare Redis databases."""
    name = urlsplit(env["DATABASE_URL"]).path.lstrip("/")
    if name in RESERVED_DATABASES or "bench" not in name:
        sys.exit(f"bench: refusing database {name!r}: its name must contain 'bench'")
    dbs = []
    for role in DEFAULT_REDIS:
        path = urlsplit(env[f"REDIS_{role}_URL"]).path.lstrip("/") or "0"
        db = int(path)
        if db in RESERVED_REDIS_DBS:
            sys.exit(f"bench: refusing Redis database {db} for {role.lower()} (reserved)")
        dbs.append(db)
    if len(set(dbs)) != len(dbs):
        sys.exit("bench: broker, cache and state need three different Redis databases")


def database_name(database_url: str) -> str:
    return urlsplit(database_url).path.lstrip("/")


def pg_connect(database_url: str, dbname: str | None = None, **kwargs):
    """A psycopg connection outside Django (to ``dbname`` instead, if given)."""
    import psycopg

    parts = urlsplit(database_url)
    return psycopg.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or None,
        dbname=dbname or database_name(database_url),
        **kwargs,
    )


def setup_django() -> dict[str, str]:
    """Point this process at the benchmark's data and start Django; returns that env."""
    env = bench_env()
    check_targets(env)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return env


class Progress:
    """Plain progress lines (``make bench`` is often not run on a terminal)."""

    def __init__(self, what: str, total: int) -> None:
        self.what, self.total = what, total
        self.start = self.last = time.monotonic()

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last < 5:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        print(
            f"  {self.what}: {done:,}/{self.total:,} ({100 * done / max(self.total, 1):.0f}%)"
            f", {rate:,.0f}/s",
            flush=True,
        )

    def elapsed(self) -> float:
        return time.monotonic() - self.start


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def print_profile(profiler: cProfile.Profile, top: int, what: str) -> None:
    """A profile's ``top`` functions by cumulative, then by own time (``what``: what it ran)."""
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(top)
        print(f"\n  functions by {order} time ({what}):")
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))
