"""Liveness (the process answers), readiness (its dependencies answer) and /metrics.

Readiness details and the metrics name hosts, queues and exception text, so they go only to
trusted callers: an address in ``MONITORING_TRUSTED_NETWORKS`` (the client address as
``inbo.api.client_ip`` defines it) or a request bearing ``MONITORING_TOKEN``. Everyone else
gets readiness as a bare status with the same code, and a 403 from /metrics.
"""

from __future__ import annotations

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from inbo.api.client_ip import client_ip
from inbo.api.errors import error_body
from monitoring import checks, metrics

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def trusted_caller(request: HttpRequest) -> bool:
    """May this caller see readiness details and the metrics?"""
    token = settings.MONITORING_TOKEN
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            return True
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in net for net in _networks(tuple(settings.MONITORING_TRUSTED_NETWORKS)))


def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def ready(request: HttpRequest) -> JsonResponse:
    results = checks.run_all()
    healthy = checks.healthy(results)
    body: dict = {"status": "ok" if healthy else "unavailable"}
    if trusted_caller(request):
        body["checks"] = {
            r.name: {
                "status": r.status,
                "latency_ms": r.latency_ms,
                "critical": r.critical,
                "detail": r.detail,
            }
            for r in results
        }
    return JsonResponse(body, status=200 if healthy else 503)


def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """django-prometheus's figures and INBO's own, for every process of this group."""
    if not trusted_caller(request):
        return JsonResponse(
            error_body("permission_denied", "Metrics are served to trusted callers only."),
            status=403,
        )
    return HttpResponse(generate_latest(metrics.web_registry()), content_type=CONTENT_TYPE_LATEST)
