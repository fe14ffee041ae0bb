from __future__ import annotations

import sys
import time
import types

import pytest

from inbo import keys
from inbo import redis as inbo_redis
from monitoring import checks
from monitoring.tasks import beat_heartbeat
from monitoring.worker import record_sent, write_heartbeat
from tests.monitoring.hanging_server import hanging_server

pytestmark = pytest.mark.django_db

ALL_CHECKS = {
    "postgres",
    "redis_broker",
    "redis_cache",
    "redis_state",
    "celery_broker",
    "workers",
    "beat",
    "search",
    "circuit_breakers",
}


def _ready(client):
    response = client.get("/health/ready/")
    return response.status_code, response.json()


def test_live_needs_no_dependencies(client, settings):
    settings.REDIS_STATE_URL = "redis://127.0.0.1:1/0"
    inbo_redis.reset_clients()
    response = client.get("/health/live/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_reports_every_check_with_status_latency_and_criticality(client):
    write_heartbeat("celery@test")
    record_sent("inbo.monitoring.beat_heartbeat")
    status, body = _ready(client)
    assert status == 200, body
    assert body["status"] == "ok"
    assert body["checks"].keys() == ALL_CHECKS
    for name, check in body["checks"].items():
        assert check.keys() == {"status", "latency_ms", "critical", "detail"}
        expected = (
            "skipped" if name == "search" and checks.search_health_function() is None else "ok"
        )
        assert check["status"] == expected, (name, check)
    assert body["checks"]["postgres"]["critical"] is True
    assert body["checks"]["redis_state"]["critical"] is True
    assert body["checks"]["workers"]["critical"] is False
    assert "celery@test" in body["checks"]["workers"]["detail"]


def test_ready_without_worker_or_beat_is_still_ready_but_says_so(client):
    status, body = _ready(client)
    assert status == 200
    assert body["checks"]["workers"]["status"] == "fail"
    assert body["checks"]["beat"]["status"] == "fail"
    assert body["checks"]["beat"]["critical"] is False


def test_a_check_named_critical_decides_readiness(client, settings):
    settings.HEALTH_CRITICAL_CHECKS = ["postgres", "workers"]
    status, body = _ready(client)
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["workers"]["critical"] is True
    write_heartbeat("celery@test")
    assert _ready(client)[0] == 200


def test_a_silent_worker_stops_counting(settings):
    write_heartbeat("celery@old", now=time.time() - settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS - 5)
    assert {r.name: r for r in checks.run_all()}["workers"].status == "fail"
    write_heartbeat("celery@new")
    result = {r.name: r for r in checks.run_all()}["workers"]
    assert result.status == "ok"
    assert set(result.data["alive"]) == {"celery@new"}


def test_beat_is_stalled_when_it_sent_nothing_for_too_long(settings):
    record_sent("inbo.features.sync", now=time.time() - settings.BEAT_MAX_AGE_SECONDS - 10)
    result = {r.name: r for r in checks.run_all()}["beat"]
    assert result.status == "fail"
    assert "ago" in result.detail
    beat_heartbeat()  # the heartbeat task, run by a worker, also proves beat sent it
    assert {r.name: r for r in checks.run_all()}["beat"].status == "ok"


def test_ready_fails_when_redis_is_unreachable(client, settings):
    settings.REDIS_STATE_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    inbo_redis.reset_clients()
    status, body = _ready(client)
    assert status == 503
    assert body["checks"]["redis_state"]["status"] == "fail"


def test_ready_follows_a_real_redis_that_stops_and_comes_back(client, settings, redis_server):
    write_heartbeat("celery@test")
    for name, db in (("REDIS_BROKER_URL", 0), ("REDIS_CACHE_URL", 1), ("REDIS_STATE_URL", 2)):
        setattr(settings, name, redis_server.url(db))
    settings.CELERY_BROKER_URL = redis_server.url(0)
    status, body = _ready(client)
    assert status == 200, body
    assert body["checks"]["redis_cache"]["status"] == "ok"

    redis_server.stop()
    started = time.monotonic()
    status, body = _ready(client)
    assert time.monotonic() - started < 1.0
    assert status == 503
    for name in ("redis_broker", "redis_cache", "redis_state", "celery_broker", "workers"):
        assert body["checks"][name]["status"] in {"fail", "timeout"}, (name, body)
    assert body["checks"]["postgres"]["status"] == "ok"

    redis_server.start()  # comes back empty: no worker heartbeat yet, but ready again
    status, body = _ready(client)
    assert status == 200, body
    assert body["checks"]["redis_state"]["status"] == "ok"


def test_ready_answers_within_a_second_when_every_redis_hangs(client, settings):
    with hanging_server() as url:
        for name in ("REDIS_BROKER_URL", "REDIS_CACHE_URL", "REDIS_STATE_URL", "CELERY_BROKER_URL"):
            setattr(settings, name, url)
        started = time.monotonic()
        status, body = _ready(client)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0, body
    assert status == 503
    assert body["checks"]["redis_state"]["status"] in {"fail", "timeout"}
    assert body["checks"]["celery_broker"]["status"] in {"fail", "timeout"}
    assert body["checks"]["postgres"]["status"] == "ok"


def test_a_hanging_check_is_cut_at_the_deadline_and_a_crashing_one_is_a_failure(settings):
    settings.HEALTH_DEADLINE_SECONDS = 0.3

    def hangs() -> checks.Outcome:
        time.sleep(2)
        return checks.Outcome()

    def crashes() -> checks.Outcome:
        raise ValueError("a bug")

    started = time.monotonic()
    results = {r.name: r for r in checks.run_all({"hangs": hangs, "crashes": crashes})}
    assert time.monotonic() - started < 0.6
    assert results["hangs"].status == "timeout"
    assert results["crashes"].status == "fail"
    assert "ValueError" in results["crashes"].detail


def _fake_search(monkeypatch, report: dict) -> None:
    module = types.ModuleType("search_app.public")
    module.health = lambda: report  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "search_app.public", module)


def test_search_is_skipped_until_search_app_reports_its_health(monkeypatch):
    monkeypatch.setitem(sys.modules, "search_app.public", types.ModuleType("search_app.public"))
    result = {r.name: r for r in checks.run_all()}["search"]
    assert result.status == "skipped"
    assert result.ok
    assert result.critical is False


def test_search_check_follows_the_backend_it_reports(client, monkeypatch):
    _fake_search(monkeypatch, {"backend": {"up": False, "latency_ms": 1.0}, "detail": "refused"})
    status, body = _ready(client)
    assert status == 200  # search falls back to PostgreSQL: reported, not critical
    assert body["checks"]["search"]["status"] == "fail"
    assert body["checks"]["search"]["detail"] == "refused"
    _fake_search(monkeypatch, {"backend": "meilisearch", "up": True})
    assert _ready(client)[1]["checks"]["search"]["status"] == "ok"


def test_heartbeat_task_writes_a_timestamp():
    beat_heartbeat()
    value = inbo_redis.state().get(keys.beat_heartbeat())
    assert float(value) == pytest.approx(time.time(), abs=5)


def test_metrics_endpoint_is_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"django_http_requests" in response.content


def test_a_redis_restart_between_probes_is_not_a_failure(settings, redis_server):
    settings.REDIS_STATE_URL = redis_server.url(0)
    assert checks.check_redis_state().detail == "ok"  # a pooled connection now exists
    redis_server.stop()
    redis_server.start()  # that connection is dead; the next probe must not report it
    assert checks.check_redis_state().detail == "ok"


def test_probes_close_together_share_one_search_report(monkeypatch):
    calls: list[int] = []
    module = types.ModuleType("search_app.public")
    module.health = lambda: calls.append(1) or {"up": True}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "search_app.public", module)
    assert checks.check_search().data == {"up": True}
    assert checks.check_search().data == {"up": True}
    assert len(calls) == 1
    monkeypatch.setattr(checks, "SEARCH_REPORT_MAX_AGE_SECONDS", 0.0)
    checks.check_search()
    assert len(calls) == 2


# --- who sees the details (MONITORING_TRUSTED_NETWORKS, MONITORING_TOKEN) ---------------

OUTSIDER = "203.0.113.5"


def test_an_untrusted_caller_gets_only_the_bare_status_with_the_same_code(client, settings):
    response = client.get("/health/ready/", REMOTE_ADDR=OUTSIDER)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}

    settings.REDIS_STATE_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    inbo_redis.reset_clients()
    response = client.get("/health/ready/", REMOTE_ADDR=OUTSIDER)
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert b"127.0.0.1" not in response.content
    assert _ready(client)[1]["checks"]["redis_state"]["status"] == "fail"  # loopback: details


def test_metrics_are_refused_to_an_untrusted_caller_in_the_envelope(client):
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDER)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert b"django_http_requests" not in response.content


def test_trusted_networks_are_configurable(client, settings):
    settings.MONITORING_TRUSTED_NETWORKS = ["203.0.113.0/24"]
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDER).status_code == 200
    assert "checks" in client.get("/health/ready/", REMOTE_ADDR=OUTSIDER).json()
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_the_monitoring_token_opens_the_details_from_anywhere(client, settings):
    settings.MONITORING_TOKEN = "s3cret-scrape-token"
    bearer = {"HTTP_AUTHORIZATION": "Bearer s3cret-scrape-token", "REMOTE_ADDR": OUTSIDER}
    assert client.get("/metrics", **bearer).status_code == 200
    assert "checks" in client.get("/health/ready/", **bearer).json()

    wrong = {"HTTP_AUTHORIZATION": "Bearer s3cret-scrape-tokeN", "REMOTE_ADDR": OUTSIDER}
    assert client.get("/metrics", **wrong).status_code == 403
    assert client.get("/health/ready/", **wrong).json() == {"status": "ok"}


def test_without_a_configured_token_no_bearer_is_trusted(client, settings):
    settings.MONITORING_TOKEN = ""
    empty = {"HTTP_AUTHORIZATION": "Bearer ", "REMOTE_ADDR": OUTSIDER}
    assert client.get("/metrics", **empty).status_code == 403


def test_behind_a_trusted_proxy_the_forwarded_client_decides_not_the_proxy(client, settings):
    # A proxy on the same machine: every request reaches the app from loopback.
    settings.TRUSTED_PROXY_COUNT = 1
    via_proxy = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": f"127.0.0.1, {OUTSIDER}"}
    assert client.get("/metrics", **via_proxy).status_code == 403
    assert client.get("/health/ready/", **via_proxy).json() == {"status": "ok"}
    # Prometheus scraping the app directly (no X-Forwarded-For) from loopback still may.
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200


def test_an_untrusted_forwarded_header_cannot_claim_loopback(client, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    spoofed = {"REMOTE_ADDR": OUTSIDER, "HTTP_X_FORWARDED_FOR": "127.0.0.1"}
    assert client.get("/metrics", **spoofed).status_code == 403
