"""Liveness (the process answers) and readiness (its dependencies answer)."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from monitoring.checks import run_all


def live(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def ready(request: HttpRequest) -> JsonResponse:
    results = run_all()
    healthy = all(r.ok for r in results if r.critical)
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {
            r.name: {
                "status": "ok" if r.ok else "fail",
                "latency_ms": r.latency_ms,
                "critical": r.critical,
                "detail": r.detail,
            }
            for r in results
        },
    }
    return JsonResponse(body, status=200 if healthy else 503)
