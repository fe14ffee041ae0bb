"""Rate limits per scope, per client address and per signed-in user, failing open.

A view names its scope (``throttle_scope = "search"``) and takes ``THROTTLED`` (both kinds) or
``AddressRateThrottle`` alone (anonymous endpoints such as sign-up). Rates come from
``settings.THROTTLE_RATES`` at request time, so an operator (or a test) changes them without
reloading DRF. Over the limit DRF raises ``Throttled``: 429 in the error envelope with
``Retry-After`` (inbo/api/errors.py).

The history lives in the Django cache (Redis). When that cache fails, the request passes:
a throttle is a guard against abuse, not a dependency, and must never turn a cache outage into
"nobody can sign in". Each such pass is logged (``api.throttle_unavailable``) and counted in
``inbo_throttle_unavailable_total{scope}``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from inbo import keys
from inbo.api.client_ip import client_ip

logger = logging.getLogger("inbo.api")


def _count_unavailable(scope: str) -> None:
    # Imported here: monitoring.metrics pulls in the apps' facades, which import their views
    # (and so this module) while the URLconf loads.
    from monitoring.metrics import THROTTLE_UNAVAILABLE

    THROTTLE_UNAVAILABLE.labels(scope=scope).inc()


class _ScopedThrottle(SimpleRateThrottle):
    """One bucket per (scope, kind, identity); the scope comes from the view."""

    kind = ""

    def __init__(self) -> None:
        # DRF resolves the rate in __init__; the scope is only known once a view is given.
        self.rate: str | None = None
        self.num_requests: int | None = None
        self.duration: int | None = None

    def get_rate(self) -> str | None:
        # An empty rate switches the scope off (the benchmark's load comes from one address).
        return (settings.THROTTLE_RATES.get(self.scope) or None) if self.scope else None

    def ident(self, request: HttpRequest | Request) -> str | None:
        raise NotImplementedError

    def get_ident(self, request: HttpRequest | Request) -> str:
        return client_ip(request)

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        ident = self.ident(request)
        if not ident or not self.scope:
            return None
        return keys.throttle(self.scope, self.kind, ident)

    def allow_request(self, request: Any, view: Any) -> bool:
        self.scope = getattr(view, "throttle_scope", None)
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        try:
            return super().allow_request(request, view)
        except RedisError as exc:
            logger.warning(
                "api.throttle_unavailable scope=%s kind=%s error=%s",
                self.scope,
                self.kind,
                type(exc).__name__,
            )
            _count_unavailable(str(self.scope))
            return True


class AddressRateThrottle(_ScopedThrottle):
    """Per client address (``inbo.api.client_ip``), signed in or not."""

    kind = "address"

    def ident(self, request: HttpRequest | Request) -> str | None:
        return self.get_ident(request) or None


class UserRateThrottle(_ScopedThrottle):
    """Per signed-in user; anonymous requests are left to the address throttle."""

    kind = "user"

    def ident(self, request: HttpRequest | Request) -> str | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return str(user.pk)


# Every user-facing write and search: per user and per address.
THROTTLED = (UserRateThrottle, AddressRateThrottle)


class _Scope:
    """Stands for a view where a throttle is checked outside DRF (the admin login form)."""

    def __init__(self, scope: str) -> None:
        self.throttle_scope = scope


def address_wait(request: HttpRequest, scope: str) -> float | None:
    """Count this request against ``scope`` for its address: ``None`` when it may go on,
    else the seconds to wait (at least 1)."""
    throttle = AddressRateThrottle()
    if throttle.allow_request(request, _Scope(scope)):
        return None
    return max(1.0, throttle.wait() or 1.0)
