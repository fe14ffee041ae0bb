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
