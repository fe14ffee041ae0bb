"""A scratch Redis database that one command at a time may hold, flush and use.

The offline evaluation and the memory report fill a database with throwaway state. Both
refuse a database the application uses, and share one lock kept in the scratch database
itself: acquiring flushes it (in one script), releasing flushes it again. A database that
holds keys no scratch run wrote (no ``keys.scratch_marker()``) is refused, never flushed:
it is another installation's, or another role's, by mistake.
"""

from __future__ import annotations

import socket
import time
import uuid
from contextlib import suppress
from urllib.parse import urlsplit

import redis
from django.conf import settings

from inbo import keys

# The marker (KEYS[2]) stays until the release flushes everything, so the keys a killed run
# left behind are still known as scratch by the next one.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if redis.call('DBSIZE') > 0 and redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
redis.call('FLUSHDB')
redis.call('SET', KEYS[2], '1')
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('FLUSHDB')
return 1
"""


class ScratchError(Exception):
    """The scratch database cannot be used."""


class ScratchUnsafe(ScratchError):
    """The URL is a database the application uses (``setting`` names which)."""

    def __init__(self, setting: str) -> None:
        self.setting = setting
        super().__init__(setting)


class ScratchBusy(ScratchError):
    """Another command holds the scratch database."""


class ScratchForeign(ScratchError):
    """The database holds keys that no scratch run wrote: it is not a scratch database."""


class ScratchLockLost(ScratchError):
    """The lock expired and was taken: the holder was too slow to renew it."""


def _address(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    with suppress(OSError):  # unresolvable: compare the name as written
        host = socket.gethostbyname(host)
    db = (parts.path or "/0").strip("/") or "0"
    return (host, parts.port or 6379, db)


def check_scratch_url(url: str) -> None:
    """Raise :class:`ScratchUnsafe` if ``url`` is the state, cache or broker database."""
    protected = {
        "REDIS_STATE_URL": settings.REDIS_STATE_URL,
        "REDIS_CACHE_URL": settings.REDIS_CACHE_URL,
        "REDIS_BROKER_URL": settings.REDIS_BROKER_URL,
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    for name, other in protected.items():
        if _address(url) == _address(other):
            raise ScratchUnsafe(name)


class ScratchLock:
    """Holds the scratch database behind ``client``: flushed on acquire and on release."""

    def __init__(self, client: redis.Redis, *, ttl_ms: int, renew_every: float = 0.0) -> None:
        self.client = client
        self.ttl_ms = ttl_ms
        self.renew_every = renew_every
        self.token = uuid.uuid4().hex
        self.renewed = time.monotonic()

    def acquire(self) -> None:
        acquired = self.client.eval(
            _ACQUIRE, 2, keys.evaluation_lock(), keys.scratch_marker(), self.token, self.ttl_ms
        )
        if acquired == -1:
            raise ScratchForeign()
        if not acquired:
            raise ScratchBusy()
        self.renewed = time.monotonic()

    def keep(self) -> None:
        """Renew the lock (at most every ``renew_every`` seconds); raise if it was lost."""
        if time.monotonic() - self.renewed < self.renew_every:
            return
        if not self.client.eval(_RENEW, 1, keys.evaluation_lock(), self.token, self.ttl_ms):
            raise ScratchLockLost()
        self.renewed = time.monotonic()

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, keys.evaluation_lock(), self.token)
