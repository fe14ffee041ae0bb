"""API token -> user, cached in Redis so that an authenticated request reads no table.

A hit is one ``GET`` on the cache database (``REDIS_CACHE_URL``, through the ``redis_cache``
circuit breaker) and builds the user and the token from what it holds: the user's id,
username and flags (``is_active``, ``is_staff``, ``is_superuser``) and the token's creation
time (expiry is checked on every request). Any other field of the user (email, names) is
deferred: reading it loads it from PostgreSQL, so nothing sees a blank value.

**Revocation is immediate, in every process.** Nothing is kept in process memory: every
request asks Redis, and every change that can revoke a token deletes its entry before the
change returns (:mod:`inbo.accounts.signals`: a token deleted — logout, logout-all, expiry
clean-up, the admin —, a user saved — deactivated, password or staff flags changed — or
deleted). A deletion also writes a marker (``AUTH_TOKEN_REVOKED_TTL_SECONDS``) that keeps
anyone from caching that token meanwhile: a request that read PostgreSQL just before the
change cannot store the old answer after it. Deleted again once the transaction commits.

**Redis away.** A read that fails goes to PostgreSQL (DRF's query), as before the cache; a
deletion that fails is logged (``auth.token_cache_forget_failed``): Redis may come back
holding the entry, which then lives at most ``AUTH_TOKEN_CACHE_SECONDS``. Changes made
behind the ORM's back (``QuerySet.update`` on users or tokens, raw SQL) send no signal and
are seen after the same bound.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from rest_framework.authtoken.models import Token

from inbo import keys

logger = logging.getLogger(__name__)

# What a request needs of its user without a query (the rest is deferred).
USER_FIELDS = frozenset({"id", "username", "is_active", "is_staff", "is_superuser"})

# Store the entry unless a revocation marker exists (one round trip, atomic).
_STORE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


def digest(key: str) -> str:
    """What stands for a token in Redis: its SHA-256, never the key itself."""
    return hashlib.sha256(key.encode()).hexdigest()


def enabled() -> bool:
    return int(settings.AUTH_TOKEN_CACHE_SECONDS) > 0


def _client() -> redis.Redis:
    # The cache database's client (one per process), with its circuit breaker
    # (inbo.redis.GuardedRedisCache).
    return cache._cache.get_client(write=True)  # type: ignore[attr-defined]


@functools.cache
def _user_fields() -> list[str]:
    # Model.from_db takes the loaded fields' values in the model's field order.
    return [f.attname for f in get_user_model()._meta.concrete_fields if f.attname in USER_FIELDS]


def lookup(key: str) -> tuple[Any, Token] | None:
    """The cached (user, token) of ``key``; None when not cached. Raises ``redis.RedisError``
    when Redis cannot answer (the caller reads PostgreSQL)."""
    raw = _client().get(keys.auth_token(digest(key)))
    if raw is None:
        return None
    entry = json.loads(raw)
    user = get_user_model().from_db(DEFAULT_DB_ALIAS, _user_fields(), entry["user"])
    token = Token.from_db(
        DEFAULT_DB_ALIAS,
        ["key", "user_id", "created"],
        [key, user.pk, datetime.fromisoformat(entry["created"])],
    )
    token.user = user
    return user, token


def store(user: Any, token: Token) -> None:
    """Cache ``token``'s user, unless it was revoked moments ago. Redis errors are raised."""
    entry = {
        "user": [getattr(user, field) for field in _user_fields()],
        "created": token.created.isoformat(),
    }
    d = digest(token.key)
    _client().eval(
        _STORE,
        2,
        keys.auth_token(d),
        keys.auth_token_revoked(d),
        json.dumps(entry, separators=(",", ":")),
        int(settings.AUTH_TOKEN_CACHE_SECONDS),
    )


def _forget_now(digests: list[str]) -> None:
    try:
        pipe = _client().pipeline(transaction=True)
        for d in digests:
            pipe.delete(keys.auth_token(d))
            pipe.set(keys.auth_token_revoked(d), 1, ex=keys.AUTH_TOKEN_REVOKED_TTL_SECONDS)
        pipe.execute()
    except redis.RedisError as exc:
        logger.warning("auth.token_cache_forget_failed tokens=%d error=%s", len(digests), exc)


def forget(token_keys: Iterable[str]) -> None:
    """Drop the cached entries of these tokens now, and again once the transaction commits
    (so no request in between can have cached what the transaction is changing)."""
    digests = [digest(k) for k in token_keys]
    if not digests:
        return
    _forget_now(digests)
    if connection.in_atomic_block:
        transaction.on_commit(lambda: _forget_now(digests))


def forget_user(user_id: int) -> None:
    """Drop the cached entries of every token of the user."""
    forget(Token.objects.filter(user_id=user_id).values_list("key", flat=True))
