"""The replay evaluation's scratch Redis database: its lock, its checks, its error messages.

The replay (:mod:`ml_app.evaluation`) points the application-state client at
``REDIS_EVAL_URL`` for the run, flushing it before and after, under a lock that is renewed
while the replay goes on, so two runs never share the database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from inbo import redis as inbo_redis
from inbo.scratch import (
    ScratchBusy,
    ScratchForeign,
    ScratchLock,
    ScratchLockLost,
    ScratchUnsafe,
    check_scratch_url,
)

LOCK_TTL_MS = 10 * 60 * 1000
LOCK_RENEW_SECONDS = 60.0


class EvaluationError(Exception):
    """The evaluation cannot run (scratch database busy or unsafe, counters unavailable)."""


class ScratchState:
    """The scratch database's lock, with the evaluation's own error messages."""

    def __init__(self, client: redis.Redis) -> None:
        self.inner = ScratchLock(client, ttl_ms=LOCK_TTL_MS, renew_every=LOCK_RENEW_SECONDS)

    def keep(self) -> None:
        """Renew the lock now and then; fail if another run has taken it meanwhile."""
        try:
            self.inner.keep()
        except ScratchLockLost:
            raise EvaluationError("Lost the scratch database lock: the run was too slow.") from None


@contextmanager
def scratch_state(url: str) -> Iterator[ScratchState]:
    """Point the application-state client at the scratch database ``url`` for the block,
    holding its lock; the database is flushed before and after."""
    try:
        check_scratch_url(url)
    except ScratchUnsafe as exc:
        raise EvaluationError(
            f"REDIS_EVAL_URL points at the same database as {exc.setting}; the evaluation "
            "flushes its database, so it must be one of its own."
        ) from None
    with inbo_redis.use_state_client(url) as client:
        lock = ScratchState(client)
        try:
            lock.inner.acquire()
        except ScratchBusy:
            raise EvaluationError(
                "Another evaluation holds the scratch Redis database (REDIS_EVAL_URL); "
                "wait for it to finish or point REDIS_EVAL_URL at another database."
            ) from None
        except ScratchForeign:
            raise EvaluationError(
                "REDIS_EVAL_URL's database holds keys that no evaluation wrote; the evaluation "
                "flushes its database, so it refuses this one. Point REDIS_EVAL_URL at an empty "
                "database (or empty this one yourself if its keys are disposable)."
            ) from None
        try:
            yield lock
        finally:
            lock.inner.release()
