"""``manage.py session_timing``: what the reading sessions cost in Redis (docs/ML.md)."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from features_app import sessions
from features_app.contracts import EventIn, EventType
from features_app.memory_report import MemoryReportError, scratch_database
from inbo import keys

START = datetime(2026, 1, 5, tzinfo=UTC)
BATCH = 500


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))] * 1000.0


class Command(BaseCommand):
    """Time the session state's writes and the home build's two session reads."""

    help = (
        "Fill a scratch Redis database (--redis-url, default REDIS_EVAL_URL; FLUSHED before "
        "and after, the application's databases are refused) with --sessions synthetic "
        "sessions of 2 to 6 engagements over --items items (Zipf-like popularity, one "
        "session every 30 s), through the real session script; then, for sessions of 1, 3 "
        "and 10 items, time the write of one engagement and the home's reads (current "
        "session, then neighbours and session-kNN): median and p95 in ms, and used_memory."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--sessions", type=int, default=60_000)
        parser.add_argument("--items", type=int, default=2_000)
        parser.add_argument("--trials", type=int, default=200)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--redis-url", default=None)

    def handle(self, *args: object, **options: object) -> None:
        n_sessions, n_items, trials = (int(options[k]) for k in ("sessions", "items", "trials"))  # type: ignore[call-overload]
        if min(n_sessions, n_items, trials) < 1:
            raise CommandError("--sessions, --items and --trials must be at least 1")
        url = str(options["redis_url"] or settings.REDIS_EVAL_URL)
        try:
            with scratch_database(url):
                client = redis.Redis.from_url(url, socket_timeout=30, decode_responses=True)
                self._run(client, n_sessions, n_items, trials, int(options["seed"]))  # type: ignore[call-overload]
                client.flushdb()
        except MemoryReportError as exc:
            raise CommandError(str(exc)) from exc

    def _run(
        self, client: redis.Redis, n_sessions: int, n_items: int, trials: int, seed: int
    ) -> None:
        rng = random.Random(seed)
        items = range(1, n_items + 1)
        weights = [1 / i for i in items]
        batch: list[EventIn] = []
        started = time.perf_counter()
        for s in range(n_sessions):
            at = START + timedelta(seconds=30 * s)
            for n, item in enumerate(rng.choices(items, weights, k=rng.randint(2, 6))):
                batch.append(
                    EventIn(
                        10**6 + s, item, EventType.CLICK, at + timedelta(minutes=n), uuid.uuid4()
                    )
                )
            if len(batch) >= BATCH or s == n_sessions - 1:
                sessions.apply(batch, now=batch[-1].occurred_at.timestamp(), client=client)
                batch = []
        memory = client.info("memory")["used_memory_human"]
        self.stdout.write(
            f"{n_sessions} sessions written in {time.perf_counter() - started:.1f} s; the index "
            f"keeps {client.zcard(keys.session_recent())} (TTL and cap), used_memory {memory}"
        )
        now = START + timedelta(seconds=30 * n_sessions + 600)
        batch_ids = itertools.count(1)  # each write a new batch, as ingestion's
        for length in (1, 3, 10):
            reads: list[float] = []
            writes: list[float] = []
            for trial in range(trials):
                user = 1 + trial + 10_000 * length
                for n, item in enumerate(rng.choices(items, weights, k=length)):
                    at = now - timedelta(minutes=length - n)
                    event = EventIn(user, item, EventType.CLICK, at, uuid.uuid4())
                    t0 = time.perf_counter()
                    sessions.apply(
                        [event], now=at.timestamp(), batch_id=next(batch_ids), client=client
                    )
                    writes.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                current = sessions.current_session(user, now=now, client=client)
                if current is not None:
                    sessions.next_reads(current, limit=40, client=client)
                reads.append(time.perf_counter() - t0)
            self.stdout.write(
                f"session of {length:2d} item(s): reads (2 round trips + kNN) median "
                f"{_quantile(reads, 0.5):.2f} ms, p95 {_quantile(reads, 0.95):.2f} ms; "
                f"write of one engagement median {_quantile(writes, 0.5):.2f} ms"
            )
