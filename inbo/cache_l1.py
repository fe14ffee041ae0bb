"""A two-level cache for shared, read-mostly data: this process's memory (L1) in front of
Redis (L2, Django's cache database), invalidated for every process at once.

**Levels.** L1 is a bounded :class:`cachetools.TTLCache` per process and namespace (``maxsize``
entries, each kept ``ttl`` seconds), guarded by a lock so a threaded web worker can share it.
L2 is the Django cache (``REDIS_CACHE_URL``, through the ``redis_cache`` circuit breaker),
shared by every process, each entry kept ``l2_ttl`` seconds. A lookup tries L1, then L2 for
what L1 lacked (one ``MGET``), then the loader for the rest, and fills both levels.

**Invalidation: versioned namespaces.** Every entry of a namespace is keyed by the
namespace's current *version token*, kept in Redis (``keys.cache_namespace_version``).
:meth:`TwoLevelCache.invalidate` replaces the token: every L2 entry under the old one is
orphaned (it expires with its TTL) and every process drops its L1 the next time it reads the
token, which it does at most every ``CACHE_VERSION_CHECK_SECONDS`` (1 s by default). So a
change reaches the process that made it at once and every other process within that
interval. Tokens are random and never reused: a cache database that was emptied (or a Redis
restart) can never bring back an entry of an older token.

**Redis away.** Nothing fails: L1 keeps serving what it has under the last token it knew,
for at most its ``ttl`` (no invalidation can reach it then, so the staleness bound becomes
``ttl``), and misses go to the loader. A process that never reached Redis keeps a local
token, so its L1 still works.

Loaders read the primary database even inside a call that may read a replica
(:func:`inbo.replicas.on_primary`): what a cache keeps is never older than its invalidation.

Values are shared between callers: treat them as read-only. Keys are ints or short strings
without ``:`` (they become part of a Redis key, built in :mod:`inbo.keys`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, TypeVar

import redis
from cachetools import TTLCache
from django.conf import settings
from django.core.cache import cache as django_cache
from django.db import transaction

from inbo import keys
from inbo.replicas import on_primary

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Every cache built in this process (for clear_all_local and the docs' namespace list).
_instances: weakref.WeakSet[TwoLevelCache] = weakref.WeakSet()


def _counter() -> Any:
    # Imported here: monitoring.metrics imports the apps, which build their caches at import.
    from monitoring.metrics import CACHE_REQUESTS

    return CACHE_REQUESTS


def _new_token() -> str:
    return secrets.token_hex(6)


class TwoLevelCache:
    """One namespace of the two-level cache (one instance per namespace and process).

    ``maxsize``/``ttl``: L1's bound (entries) and lifetime (seconds); ``l2_ttl``: the Redis
    entries' lifetime (default ``ttl`` x 10); ``version_check_seconds``: how often this
    process re-reads the namespace's version (default ``CACHE_VERSION_CHECK_SECONDS``).
    """

    def __init__(
        self,
        namespace: str,
        *,
        maxsize: int,
        ttl: float,
        l2_ttl: float | None = None,
        version_check_seconds: float | None = None,
    ) -> None:
        if ":" in namespace or "." in namespace:
            raise ValueError(f"a cache namespace is one word, got {namespace!r}")
        self.namespace = namespace
        self.maxsize = maxsize
        self.ttl = ttl
        self.l2_ttl = l2_ttl if l2_ttl is not None else ttl * 10
        self._version_check = version_check_seconds
        self._l1: TTLCache = TTLCache(maxsize=maxsize, ttl=ttl)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_checked = float("-inf")
        self._token_shared = False  # the token came from Redis (not a local stand-in)
        # Lookups of this instance by (level, result): tests and the shell read them.
        self.stats: dict[tuple[str, str], int] = {}
        _instances.add(self)

    # --- reading ---------------------------------------------------------------------------
    def get_or_set(self, key: K, loader: Callable[[], V]) -> V:
        """The value of ``key``, loaded by ``loader()`` (and cached) if no level has it."""
        return self.get_many([key], lambda missing: {key: loader()})[key]

    def get_many(
        self, keys_: Iterable[K], loader: Callable[[list[K]], Mapping[K, V]]
    ) -> dict[K, V]:
        """Values of ``keys_`` by key. ``loader(missing)`` returns the values of the keys no
        level had (a key it leaves out is absent from the answer, and is not cached)."""
        wanted = list(dict.fromkeys(keys_))
        if not wanted:
            return {}
        if not settings.CACHE_L1_ENABLED:
            return dict(loader(wanted))
        token = self._current_token()
        found: dict[K, V] = {}
        missing: list[K] = []
        # One clock reading for the whole lookup, and one call per key (``get`` costs two:
        # a feed build looks up hundreds of facets here).
        with self._lock, self._l1.timer:
            lookup = self._l1.__getitem__
            for key in wanted:
                try:
                    found[key] = lookup((token, key))
                except KeyError:  # absent, or expired
                    missing.append(key)
        self._count("l1", "hit", len(found))
        if not missing:
            return found
        self._count("l1", "miss", len(missing))
        from_l2: dict[K, V] | None = self._l2_get(token, missing) if self._token_shared else None
        if from_l2:
            found.update(from_l2)
            missing = [key for key in missing if key not in from_l2]
        loaded: dict[K, V] = {}
        if missing:
            # From the primary: a replica a second behind would store the old rows for the
            # entries' whole lifetime, past the invalidation that was meant to drop them.
            with on_primary():
                loaded = dict(loader(missing))
        found.update(loaded)
        if loaded and from_l2 is not None:
            self._l2_set(token, loaded)
        with self._lock:
            if self._token == token:  # not invalidated meanwhile
                for key, value in (from_l2 or {}).items():
                    self._l1[(token, key)] = value
                for key, value in loaded.items():
                    self._l1[(token, key)] = value
        return found

    # --- invalidating ----------------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget every value of the namespace, in every process (this one at once, the
        others within ``CACHE_VERSION_CHECK_SECONDS``).

        Inside a transaction the token is replaced now (this process reads its own writes)
        and again once the transaction commits: a process that read the old rows before the
        commit stored them under the intermediate token, which the commit retires.
        """
        self._replace_token()
        connection = transaction.get_connection()
        if connection.in_atomic_block and not any(
            entry[1] == self._replace_token for entry in connection.run_on_commit
        ):
            # Once per transaction, however many rows it changes (a provider's items).
            transaction.on_commit(self._replace_token)

    def clear_local(self) -> None:
        """Forget this process's copies and version (tests; a shell after bulk edits)."""
        with self._lock:
            self._l1.clear()
            self._token = None
            self._token_checked = float("-inf")
            self._token_shared = False

    def __len__(self) -> int:
        """Entries in L1 now (never more than ``maxsize``)."""
        with self._lock:
            return len(self._l1)

    # --- internals ---------------------------------------------------------------------------
    def _interval(self) -> float:
        if self._version_check is not None:
            return self._version_check
        return float(settings.CACHE_VERSION_CHECK_SECONDS)

    def _current_token(self) -> str:
        now = time.monotonic()
        token = self._token
        if token is not None and now - self._token_checked < self._interval():
            return token
        vkey = keys.cache_namespace_version(self.namespace)
        shared = True
        try:
            seen = django_cache.get(vkey)
            if seen is None:
                django_cache.add(vkey, _new_token(), timeout=None)
                seen = django_cache.get(vkey)
        except redis.RedisError:
            seen = None
        if seen is None:
            # Redis away: keep what L1 holds (bounded by its TTL), or a local stand-in.
            seen, shared = token or f"local{_new_token()}", False
        self._adopt(str(seen), now, shared=shared)
        return str(seen)

    def _adopt(self, token: str, now: float, *, shared: bool) -> None:
        with self._lock:
            if token != self._token:
                self._l1.clear()
                self._token = token
            self._token_checked = now
            self._token_shared = shared

    def _replace_token(self) -> None:
        token = _new_token()
        try:
            django_cache.set(keys.cache_namespace_version(self.namespace), token, timeout=None)
            shared = True
        except redis.RedisError:
            # Other processes cannot be told: their copies expire within L1's TTL.
            logger.warning("cache.invalidate_failed namespace=%s", self.namespace)
            token, shared = f"local{token}", False
        self._adopt(token, time.monotonic(), shared=shared)

    def _l2_get(self, token: str, missing: list[K]) -> dict[K, V] | None:
        """Values L2 holds (None when Redis could not be reached)."""
        names = {keys.cache_entry(self.namespace, token, str(key)): key for key in missing}
        try:
            stored = django_cache.get_many(list(names))
        except redis.RedisError:
            self._count("l2", "error", len(missing))
            return None
        self._count("l2", "hit", len(stored))
        self._count("l2", "miss", len(missing) - len(stored))
        return {names[name]: value for name, value in stored.items()}

    def _l2_set(self, token: str, values: Mapping[K, V]) -> None:
        entries = {
            keys.cache_entry(self.namespace, token, str(key)): value
            for key, value in values.items()
        }
        with contextlib.suppress(redis.RedisError):  # the next lookup loads again
            django_cache.set_many(entries, timeout=self.l2_ttl)

    def _count(self, level: str, result: str, n: int) -> None:
        if n:
            self.stats[(level, result)] = self.stats.get((level, result), 0) + n
            _counter().labels(level=level, namespace=self.namespace, result=result).inc(n)


def clear_all_local() -> None:
    """:meth:`TwoLevelCache.clear_local` for every cache of this process (tests)."""
    for instance in list(_instances):
        instance.clear_local()


def namespaces() -> list[str]:
    """The namespaces built in this process, sorted."""
    return sorted({instance.namespace for instance in _instances})
