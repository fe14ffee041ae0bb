from __future__ import annotations

import time

import pytest

from inbo import keys
from inbo import redis as inbo_redis
from monitoring.tasks import beat_heartbeat

pytestmark = pytest.mark.django_db


def test_live_needs_no_dependencies(client):
    response = client.get("/health/live/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_each_check(client):
    beat_heartbeat()
    response = client.get("/health/ready/")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {"postgres", "redis_state", "beat"} <= body["checks"].keys()
    assert all(check["status"] == "ok" for check in body["checks"].values())


def test_ready_without_beat_heartbeat_is_still_ready_but_says_so(client):
    body = client.get("/health/ready/").json()
    assert body["checks"]["beat"]["status"] == "fail"
    assert body["checks"]["beat"]["critical"] is False
    assert body["status"] == "ok"


def test_ready_fails_when_redis_is_unreachable(client, settings):
    settings.REDIS_STATE_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    inbo_redis.reset_clients()
    response = client.get("/health/ready/")
    assert response.status_code == 503
    assert response.json()["checks"]["redis_state"]["status"] == "fail"


def test_heartbeat_task_writes_a_timestamp():
    beat_heartbeat()
    value = inbo_redis.state().get(keys.beat_heartbeat())
    assert float(value) == pytest.approx(time.time(), abs=5)


def test_metrics_endpoint_is_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests" in response.content
