"""Circuit breakers around slow or hung dependencies (Redis state and cache, Meilisearch).

A hung dependency (a SIGSTOP'd Redis, a search engine that accepts connections and never
answers) costs every call its full socket timeout; a request that makes twenty calls waits
twenty timeouts. A breaker counts consecutive *failures* (timeouts, refused connections);
after ``fail_max`` of them it **opens** and every call fails at once with a
:class:`CircuitOpen` error, which callers already treat as "dependency down" (the Redis one is
a ``redis.ConnectionError``, the search one a ``BackendUnavailable``), so their existing
fallbacks run without waiting. After ``reset_timeout`` seconds the breaker goes
**half-open**: exactly one call (the trial) goes through; success closes the breaker, failure
opens it for another ``reset_timeout``. Every other call during the trial fails fast.

Built on pybreaker (its states, storage, listeners and transitions), with one change:
pybreaker holds its lock for the whole guarded call (danielfm/pybreaker#55), which would
serialise every Redis command of a threaded web worker. :meth:`Breaker.guard` takes the lock
only to admit a call and to record its outcome.

Breakers live per process (each web worker, each Celery child finds out on its own); their
state is the ``inbo_circuit_state`` metric and part of ``/health/ready/`` (docs/OPERATIONS.md).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker
import redis

T = TypeVar("T")
logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = pybreaker.STATE_CLOSED, pybreaker.STATE_OPEN, pybreaker.STATE_HALF_OPEN
# The metric's value per state: 0 closed, 0.5 half-open (one trial call), 1 open.
STATE_VALUES = {CLOSED: 0.0, HALF_OPEN: 0.5, OPEN: 1.0}


class CircuitOpen(Exception):
    """The breaker is open: the call was not made. Mixed into each dependency's own "down"
    error so that existing fallbacks catch it unchanged."""


class RedisCircuitOpen(CircuitOpen, redis.ConnectionError):
    """Redis calls are cut off for now: every ``except redis.RedisError`` fallback runs."""


class _Report(pybreaker.CircuitBreakerListener):
    """Logs every change and keeps ``inbo_circuit_state`` / ``inbo_circuit_opens`` in step."""

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        log = logger.warning if new_state.name == OPEN else logger.info
        log(
            "breaker.state_changed dependency=%s from=%s to=%s failures=%s",
            cb.dependency,
            old_state.name if old_state is not None else None,
            new_state.name,
            cb.fail_counter,
        )
        _publish(cb.dependency, new_state.name, opened=new_state.name == OPEN)


def _publish(name: str, state: str, *, opened: bool = False) -> None:
    # Imported here: monitoring imports the apps, which import inbo.redis (and so this module).
    from monitoring.metrics import CIRCUIT_OPENS, CIRCUIT_STATE

    CIRCUIT_STATE.labels(dependency=name).set(STATE_VALUES[state])
    if opened:
        CIRCUIT_OPENS.labels(dependency=name).inc()


class Breaker(pybreaker.CircuitBreaker):
    """A circuit breaker for one dependency of this process.

    ``failures`` are the exception types that count as the dependency failing; any other
    outcome (a result, an application error such as a Redis ``WRONGTYPE``) means it answered
    and resets the count. ``open_error`` is raised, with a short message, while open.
    """

    def __init__(
        self,
        name: str,
        *,
        fail_max: int,
        reset_timeout: float,
        failures: tuple[type[BaseException], ...],
        open_error: Callable[[str], BaseException],
        excluded: tuple[type[BaseException], ...] = (),
    ) -> None:
        def answered(exc: BaseException) -> bool:
            return not isinstance(exc, failures) or isinstance(exc, excluded)

        super().__init__(
            fail_max=max(1, fail_max),
            reset_timeout=reset_timeout,
            exclude=[answered],
            listeners=[_Report()],
            name=name,
            throw_new_error_on_trip=False,
        )
        self._open_error = open_error
        self._trial_in_flight = False
        self._local = threading.local()  # nesting depth of guard() in this thread
        self.retired = False  # replaced by a new one: no longer reported
        _live.add(self)
        _publish(name, CLOSED)

    @property
    def dependency(self) -> str:
        """What it guards: the ``dependency`` label of its metrics."""
        return str(self.name)

    # --- calling through it ------------------------------------------------------------
    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self.guard():
            return func(*args, **kwargs)

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run the block if the breaker admits it, and record how it ended. A guard nested in
        another of the same breaker (one operation made of several calls) passes through:
        the outer one counts the operation once."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            yield
            return
        trial = self._admit()
        self._local.depth = 1
        try:
            yield
        except BaseException as exc:
            self._record(trial, exc)
            raise
        finally:
            self._local.depth = 0
        self._record(trial, None)

    def _admit(self) -> bool:
        """Let the call through (True if it is the half-open trial) or raise ``open_error``."""
        with self._lock:
            state = self.current_state
            if state == CLOSED:
                return False
            if state == OPEN:
                left = self.seconds_until_trial()
                if left > 0:
                    raise self._open_error(
                        f"circuit {self.dependency} open (next trial in {left:.1f}s)"
                    )
                self.half_open()
            if self._trial_in_flight:
                raise self._open_error(
                    f"circuit {self.dependency} half-open (trial call in flight)"
                )
            self._trial_in_flight = True
            return True

    def _record(self, trial: bool, exc: BaseException | None) -> None:
        with self._lock:
            if trial:
                self._trial_in_flight = False
            if exc is None or not self.is_system_error(exc):
                self._state_storage.reset_counter()
                if trial and self.current_state == HALF_OPEN:
                    self.close()
                return
            self._inc_counter()
            state = self.current_state
            # A call admitted before another thread opened the breaker changes nothing more.
            if (trial and state == HALF_OPEN) or (
                state == CLOSED and self.fail_counter >= self.fail_max
            ):
                self.open()

    def allow_trial(self) -> None:
        """If open, let the next call be the half-open trial now rather than after the reset
        time (tests; an operator's shell once the dependency is fixed)."""
        with self._lock:
            if self.current_state == OPEN:
                since = datetime.now(UTC) - timedelta(seconds=self.reset_timeout)
                self._state_storage.opened_at = since

    # --- reading it --------------------------------------------------------------------
    def seconds_until_trial(self) -> float:
        """While open: how long until a trial call is let through (0 when it would be)."""
        opened_at = self._state_storage.opened_at
        if self.current_state != OPEN or opened_at is None:
            return 0.0
        due = opened_at + timedelta(seconds=self.reset_timeout)
        return max(0.0, (due - datetime.now(UTC)).total_seconds())

    def describe(self) -> dict[str, Any]:
        """State, consecutive failures and when it opened (for readiness details)."""
        opened_at = self._state_storage.opened_at
        state = self.current_state
        return {
            "state": state,
            "failures": self.fail_counter,
            "fail_max": self.fail_max,
            "reset_timeout_seconds": self.reset_timeout,
            "opened_at": opened_at.isoformat() if opened_at and state != CLOSED else None,
        }


# Every breaker alive in this process; a dependency's state is the worst of its breakers
# (normally one; tests build extra search backends, each with its own).
_live: weakref.WeakSet[Breaker] = weakref.WeakSet()
_SEVERITY = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}


def states() -> dict[str, dict[str, Any]]:
    """Per dependency name, the description of its worst breaker in this process."""
    worst: dict[str, dict[str, Any]] = {}
    for breaker in list(_live):
        if breaker.retired:
            continue
        described = breaker.describe()
        seen = worst.get(breaker.dependency)
        if seen is None or _SEVERITY[described["state"]] > _SEVERITY[seen["state"]]:
            worst[breaker.dependency] = described
    return dict(sorted(worst.items()))


def allow_trials() -> None:
    """:meth:`Breaker.allow_trial` for every breaker of this process."""
    for breaker in list(_live):
        breaker.allow_trial()
