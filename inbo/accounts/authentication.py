"""DRF's token authentication with an expiry: a token works ``TOKEN_TTL_HOURS`` after issue."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token


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
        user, token = super().authenticate_credentials(key)
        if token_expired(token):
            raise exceptions.AuthenticationFailed("Token expired; request a new one.")
        return user, token
