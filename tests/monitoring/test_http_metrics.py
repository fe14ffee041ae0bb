"""The web's HTTP metrics: what the alerts read is recorded, the unread series are not."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

pytestmark = pytest.mark.django_db

VIEW = "v1:me"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_responses_by_status_and_view_and_latency_are_recorded(auth_client):
    by_view = ("django_http_responses_total_by_status_view_method_total",)  # one long name
    before = {
        "status": _value("django_http_responses_total_by_status_total", status="200"),
        "view": _value(*by_view, status="200", view=VIEW, method="GET"),
        "latency": _value(
            "django_http_requests_latency_seconds_by_view_method_count", view=VIEW, method="GET"
        ),
        "body": _value("django_http_responses_body_total_bytes_count"),
        "method": _value("django_http_requests_total_by_method_total", method="GET"),
    }

    assert auth_client.get("/api/v1/me/").status_code == 200

    assert _value("django_http_responses_total_by_status_total", status="200") == (
        before["status"] + 1
    )
    assert _value(*by_view, status="200", view=VIEW, method="GET") == before["view"] + 1
    assert (
        _value("django_http_requests_latency_seconds_by_view_method_count", view=VIEW, method="GET")
        == before["latency"] + 1
    )
    # Not recorded: nothing reads them (monitoring/middleware.py).
    assert _value("django_http_responses_body_total_bytes_count") == before["body"]
    assert _value("django_http_requests_total_by_method_total", method="GET") == before["method"]
