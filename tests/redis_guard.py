"""The test suite flushes its Redis databases; it must never flush one that is not its own.

Before the first test, every database the tests use (broker, cache, state, scratch) must be
empty or carry ``keys.scratch_marker()``, which the suite writes into each at the start and
at the end of a run. A database holding other keys belongs to someone else (a developer's
installation, a ``REDIS_URL`` pointed at the wrong number): the run stops before anything is
flushed.
"""

from __future__ import annotations

from contextlib import suppress
from urllib.parse import urlsplit

import redis
from django.conf import settings

from inbo import keys
from inbo.env import redis_db_of

ROLE_SETTINGS = ("REDIS_BROKER_URL", "REDIS_CACHE_URL", "REDIS_STATE_URL", "REDIS_EVAL_URL")


def guarded_databases() -> dict[str, str]:
    """The Redis URLs the tests flush, by setting name."""
    return {name: getattr(settings, name) for name in ROLE_SETTINGS}


def foreign_keys(client: redis.Redis, sample: int = 3) -> list[str]:
    """A few keys of ``client``'s database when it holds keys and no marker, else []."""
    if client.dbsize() == 0 or client.exists(keys.scratch_marker()):
        return []
    found = []
    for key in client.scan_iter(count=100):
        found.append(key.decode() if isinstance(key, bytes) else str(key))
        if len(found) >= sample:
            break
    return found


def refusal(name: str, url: str, sample: list[str]) -> str:
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 6379} database {redis_db_of(url)}"
    return (
        f"Redis {where} ({name}) holds keys the test suite did not write (e.g. {sample}). "
        "The tests flush their databases, so the run stops here and flushes nothing. Point "
        f"the tests at databases of their own ({', '.join(ROLE_SETTINGS)}; README, "
        "'Tests and Redis'), or, if these keys are disposable, empty it first: "
        f"redis-cli -h {parts.hostname} -p {parts.port or 6379} -n {redis_db_of(url)} flushdb"
    )


def check_databases() -> str | None:
    """The refusal message for the first test database holding foreign keys, else None.

    An unreachable Redis is left to the tests themselves (they fail with their own error).
    """
    for name, url in guarded_databases().items():
        client = redis.Redis.from_url(url, socket_timeout=5)
        try:
            sample = foreign_keys(client)
        except redis.RedisError:
            continue
        finally:
            client.close()
        if sample:
            return refusal(name, url, sample)
    return None


def mark_databases() -> None:
    """Mark every test database as the suite's, so the next run may flush it."""
    for url in guarded_databases().values():
        client = redis.Redis.from_url(url, socket_timeout=5)
        with suppress(redis.RedisError):
            client.set(keys.scratch_marker(), "inbo-tests")
        client.close()
