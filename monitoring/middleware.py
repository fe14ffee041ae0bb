"""Feed latency and interactions measured around the experience views, from outside them.

Monitoring sits above every app, so it measures at the view boundary instead of reaching
into experience_app's services: the resolved URL says which endpoint ran, the DRF response
still carries the parsed request and the result it sent.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from django.http import HttpRequest, HttpResponse
from django_prometheus import middleware as django_prometheus
from django_prometheus.utils import Time, TimeSince

from monitoring import metrics

HOME_VIEW = "v1:experience-home"
SECTION_VIEW = "v1:experience-section"
INTERACTIONS_VIEW = "v1:experience-interactions"


class ApiMetricsMiddleware:
    """Observes ``inbo_feed_latency_seconds`` and counts ``inbo_interactions*``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        match = request.resolver_match
        if match is None:
            return response
        if match.view_name == HOME_VIEW:
            metrics.FEED_LATENCY.labels(section="home").observe(time.perf_counter() - start)
        elif match.view_name == SECTION_VIEW:
            # Only a served page names its section: an unknown key must not become a label.
            section = str(match.kwargs.get("key")) if response.status_code == 200 else "invalid"
            metrics.FEED_LATENCY.labels(section=section).observe(time.perf_counter() - start)
        elif match.view_name == INTERACTIONS_VIEW and response.status_code == 200:
            count_interactions(response)
        return response


def count_interactions(response: HttpResponse) -> None:
    """Interactions by type (from the parsed request) and by outcome (from the result)."""
    result = getattr(response, "data", None)
    context = getattr(response, "renderer_context", None) or {}
    drf_request = context.get("request")
    if not isinstance(result, Mapping) or drf_request is None:
        return
    rejected = {r["index"] for r in result.get("rejected", [])}
    batch: Any = drf_request.data.get("interactions", [])
    by_type = Counter(
        str(i.get("type"))
        for index, i in enumerate(batch)
        if index not in rejected and isinstance(i, Mapping)
    )
    for interaction_type, n in by_type.items():
        metrics.INTERACTIONS_RECEIVED.labels(type=interaction_type).inc(n)
    metrics.INTERACTIONS.labels(outcome="accepted").inc(int(result.get("accepted", 0)))
    metrics.INTERACTIONS.labels(outcome="duplicate").inc(int(result.get("duplicates", 0)))
    metrics.INTERACTIONS.labels(outcome="rejected").inc(len(rejected))


class PrometheusAfterMiddleware(django_prometheus.PrometheusAfterMiddleware):
    """django-prometheus's, recording what the alerts and runbooks read and nothing else.

    Kept: requests by view, transport and method; responses by status and by status, view
    and method; latency by view and method (and its unknown count); exceptions. Not
    recorded any more (their series stay at zero): requests by method, by transport, AJAX
    requests, request and response body size histograms, responses by charset, streaming
    responses — seven metric updates a request, two of them 30-bucket histograms, which
    made this middleware the most expensive of the stack (docs/BENCHMARKS.md, "The floor").
    """

    def process_request(self, request: HttpRequest) -> None:
        request.prometheus_after_middleware_event = Time()  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        m = self.metrics
        status = str(response.status_code)
        name = self._get_view_name(request)
        m.responses_by_status.labels(status=status).inc()
        m.responses_by_status_view_method.labels(
            status=status, view=name, method=self._method(request)
        ).inc()
        began = getattr(request, "prometheus_after_middleware_event", None)
        if began is None:
            m.requests_unknown_latency.inc()
        else:
            m.requests_latency_by_view_method.labels(view=name, method=request.method).observe(
                TimeSince(began)
            )
        return response
