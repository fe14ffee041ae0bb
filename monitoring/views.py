"""Liveness (the process answers), readiness (its dependencies answer) and /metrics."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitoring import checks, metrics


def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def ready(request: HttpRequest) -> JsonResponse:
    results = checks.run_all()
    healthy = checks.healthy(results)
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {
            r.name: {
                "status": r.status,
                "latency_ms": r.latency_ms,
                "critical": r.critical,
                "detail": r.detail,
            }
            for r in results
        },
    }
    return JsonResponse(body, status=200 if healthy else 503)


def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """django-prometheus's figures and INBO's own, for every process of this group."""
    return HttpResponse(generate_latest(metrics.web_registry()), content_type=CONTENT_TYPE_LATEST)
