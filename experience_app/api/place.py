"""The place a trusted proxy vouches for (issue 13, FEAT-004).

A header is written by whoever sends the request, so ``PLACE_COUNTRY_HEADER`` (and
``PLACE_REGION_HEADER``) count only when the request came through our proxies: with
``TRUSTED_PROXY_COUNT = N > 0``, it carries ``X-Forwarded-For`` with at least N addresses
(each proxy appends one, see ``inbo.api.client_ip``), and, when ``PLACE_PROXY_NETWORKS`` is
set, its peer is in one of those networks. Those proxies must set the header themselves,
overwriting any the client sent. A value that is not an ISO 3166-1 alpha-2 code is ignored;
a place is never guessed from anything else (no address lookup, no Accept-Language).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request

from experience_app.time_place import Place, valid_country, valid_region


def _meta_name(header: str) -> str:
    return "HTTP_" + header.strip().upper().replace("-", "_")


def _through_trusted_proxies(request: HttpRequest | Request) -> bool:
    proxies = int(settings.TRUSTED_PROXY_COUNT)
    if proxies <= 0:
        return False
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR") or "")
    if len([p for p in forwarded.split(",") if p.strip()]) < proxies:
        return False
    networks = settings.PLACE_PROXY_NETWORKS
    if not networks:
        return True
    try:
        peer = ipaddress.ip_address(str(request.META.get("REMOTE_ADDR") or ""))
    except ValueError:
        return False
    return any(peer in ipaddress.ip_network(n, strict=False) for n in networks)


def proxy_place(request: HttpRequest | Request) -> Place | None:
    """The country (and region) the trusted proxy wrote, or None."""
    header = settings.PLACE_COUNTRY_HEADER
    if not header or not _through_trusted_proxies(request):
        return None
    raw = request.META.get(_meta_name(header))
    country = valid_country(str(raw).strip()[:8]) if raw is not None else None
    if country is None:
        return None
    region_header = settings.PLACE_REGION_HEADER
    region = valid_region(request.META.get(_meta_name(region_header))) if region_header else ""
    return Place(country, region)
