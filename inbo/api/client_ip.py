"""The client's address: one rule for throttles, logs and the monitoring endpoints' trust.

``X-Forwarded-For`` is written by whoever sends the request, so only the entries appended by
our own proxies can be believed: with ``TRUSTED_PROXY_COUNT = N`` the client is the Nth
address from the right (the one the outermost trusted proxy saw), with 0 it is the TCP peer.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request


def client_ip(request: HttpRequest | Request) -> str:
    """The address of the client as far as the configured proxies vouch for it."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    proxies = int(settings.TRUSTED_PROXY_COUNT)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if proxies <= 0 or not forwarded:
        return remote
    addresses = [part.strip() for part in str(forwarded).split(",") if part.strip()]
    if not addresses:
        return remote
    # Fewer entries than proxies: the left-most is the furthest any proxy saw (DRF's rule).
    candidate = addresses[-min(proxies, len(addresses))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        # Our proxies write addresses; garbage there means the header was not theirs. The
        # peer (a proxy) then stands for the client, so garbage cannot open fresh buckets.
        return remote
