"""DRF's token authentication with an expiry: a token works ``TOKEN_TTL_HOURS`` after issue.

The token's user comes from Redis when it is cached there (inbo/accounts/token_cache.py),
else from PostgreSQL (DRF's query), which then caches it: a signed-in request usually reads
no table. Revocations delete the cached entry at once; expiry is checked on every request.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from inbo.accounts import token_cache

logger = logging.getLogger(__name__)


def token_expires_at(token: Token) -> datetime | None:
    """When ``token`` stops working; ``None`` when tokens never expire (TTL 0)."""
    hours = int(settings.TOKEN_TTL_HOURS)
    if hours <= 0:
        return None
    return token.created + timedelta(hours=hours)


def token_expired(token: Token, *, now: datetime | None = None) -> bool:
    expires_at = token_expires_at(token)
    return expires_at is not None and expires_at <= (now or timezone.now())


class ExpiringTokenAuthentication(TokenAuthentication):
    """``Authorization: Token <key>``; an expired key is refused like an unknown one (401)."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        cached, redis_answered = None, token_cache.enabled()
        if redis_answered:
            try:
                cached = token_cache.lookup(key)
            except redis.RedisError as exc:
                redis_answered = False
                logger.debug("auth.token_cache_unavailable error=%s", exc)
        if cached is not None:
            user, token = cached
            if not user.is_active:  # never stored so; a user deactivated drops the entry
                raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        else:
            user, token = super().authenticate_credentials(key)
        if token_expired(token):
            raise exceptions.AuthenticationFailed("Token expired; request a new one.")
        if cached is None and redis_answered:
            try:
                token_cache.store(user, token)
            except redis.RedisError as exc:
                logger.debug("auth.token_cache_unavailable error=%s", exc)
        return user, token
