"""The lock-and-status pattern of every feature-store job, written once (ADR 0016).

``with jobs.run("reconcile", ttl_seconds=..., pause_counting=True) as job:``

* one run per job name: a Redis lock with a TTL, so a run killed without cleanup frees it
  when the TTL passes, and the task (``acks_late``) or the next beat run starts again;
  ``job.renew()`` extends it (and the pause) between steps of a long run;
* ``pause_counting``: the run also holds the counting pause (``keys.features_counting_paused``)
  — the counting script refuses every batch, which stays pending in PostgreSQL — so the
  counters stand still while the job reads or rebuilds them. Only one run may pause at a
  time, so reconcile, snapshot and restore exclude each other;
* ``blocked_by_pause``: a job that reads the counters (sync) is refused while another pauses
  them (a half-restored or half-repaired state would look like counters going backwards);
* the job's status hash records the start, the end, the outcome and the job's figures.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import redis

from inbo import keys
from inbo import redis as inbo_redis


class JobBusy(Exception):
    """Another process holds this job's lock, or the counting pause it needs."""


class JobLost(Exception):
    """The run's lock expired and may be held by another run: this one must stop."""


_EXTEND = """
local ok = 1
for i = 1, #KEYS do
    if redis.call('GET', KEYS[i]) == ARGV[1] then
        redis.call('PEXPIRE', KEYS[i], ARGV[2])
    else
        ok = 0
    end
end
return ok
"""
_RELEASE = """
for i = 1, #KEYS do
    if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 0
"""


@dataclass
class Job:
    name: str
    token: str
    ttl_ms: int
    held: list[str]
    client: redis.Redis
    status: dict[str, str | int | float] = field(default_factory=dict)

    def resume_counting(self) -> None:
        """Give the counting pause back early (the job keeps its lock)."""
        pause = keys.features_counting_paused()
        if pause in self.held:
            self.client.eval(_RELEASE, 1, pause, self.token)
            self.held.remove(pause)

    def renew(self) -> None:
        """Extend the lock (and the pause) for another TTL; JobLost if either lapsed."""
        if not self.client.eval(_EXTEND, len(self.held), *self.held, self.token, self.ttl_ms):
            raise JobLost(self.name)


def counting_paused(client: redis.Redis | None = None) -> bool:
    return bool((client or inbo_redis.state()).exists(keys.features_counting_paused()))


@contextmanager
def run(
    name: str,
    *,
    ttl_seconds: int,
    pause_counting: bool = False,
    blocked_by_pause: bool = False,
) -> Iterator[Job]:
    """Run job ``name`` exclusively (JobBusy if it cannot), recording its status."""
    client = inbo_redis.state()
    token = f"{name}:{uuid.uuid4().hex}"
    ttl_ms = ttl_seconds * 1000
    lock = keys.features_lock(name)
    if not client.set(lock, token, nx=True, px=ttl_ms):
        raise JobBusy(name)
    held = [lock]
    pause = keys.features_counting_paused()
    if (pause_counting and not client.set(pause, token, nx=True, px=ttl_ms)) or (
        blocked_by_pause and client.exists(pause)
    ):
        holder = str(client.get(pause) or "?")
        client.eval(_RELEASE, 1, lock, token)
        raise JobBusy(f"{name} (counting paused by {holder.split(':')[0]})")
    if pause_counting:
        held.append(pause)
    job = Job(name, token, ttl_ms, held, client)
    status_key = keys.features_job_status(name)
    started = time.time()
    client.hset(status_key, mapping={"started_at": f"{started:.3f}", "state": "running"})
    try:
        yield job
    except BaseException as exc:
        _finish(client, status_key, started, "failed", {"error": type(exc).__name__})
        raise
    else:
        _finish(client, status_key, started, "ok", job.status)
    finally:
        client.eval(_RELEASE, len(held), *held, token)


def _finish(client, status_key, started, state, figures) -> None:
    finished = time.time()
    mapping = {
        "finished_at": f"{finished:.3f}",
        "seconds": f"{finished - started:.3f}",
        "state": state,
        **figures,
    }
    # The status is a report; losing it must not hide the job's own outcome.
    with contextlib.suppress(redis.RedisError):
        client.hset(status_key, mapping=mapping)
