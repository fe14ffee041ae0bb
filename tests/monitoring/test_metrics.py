from __future__ import annotations

import re
import sys
import time
import types
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client import REGISTRY

from experiments_app.models import Decision
from features_app import sync
from features_app.models import CounterQuarantine
from inbo import keys
from inbo import redis as inbo_redis
from monitoring import checks, metrics
from monitoring.tasks import beat_heartbeat
from monitoring.worker import record_sent, write_heartbeat
from tests.factories import ItemFactory

pytestmark = pytest.mark.django_db


def _metrics(client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def test_feature_store_figures_are_exported(client):
    item = ItemFactory()
    CounterQuarantine.objects.create(item=item, counter="clicks", value=-1, reason="negative")
    CounterQuarantine.objects.create(
        item=item, counter="reads", value=-1, reason="negative", resolved_at=timezone.now()
    )
    state = inbo_redis.state()
    state.sadd(keys.dirty_items(), item.id)
    state.hset(keys.features_job_status("reconcile"), mapping={"drift": 7, "finished_at": 1})
    text = _metrics(client)
    assert "inbo_features_quarantined_counters 1.0" in text
    assert "inbo_features_sync_backlog_items 1.0" in text
    assert "inbo_features_reconcile_drift 7.0" in text


def test_experiment_figures_are_exported(client, user):
    window = timedelta(seconds=settings.EXPERIMENTS_REWARD_WINDOW_SECONDS)
    now = timezone.now()
    for minutes, reward in ((20, None), (5, None), (30, 1.0)):
        Decision.objects.create(
            user=user,
            kind="bandit",
            key="order",
            arm="a",
            propensity=0.5,
            decided_at=now - window - timedelta(minutes=minutes),
            reward=reward,
        )
    Decision.objects.create(
        user=user, kind="bandit", key="order", arm="a", propensity=0.5, decided_at=now
    )
    text = _metrics(client)
    assert "inbo_experiments_running 0.0" in text
    assert "inbo_bandit_rewards_due 2.0" in text
    lag = float(re.search(r"^inbo_bandit_rewards_lag_seconds (\S+)$", text, re.M).group(1))
    assert 20 * 60 - 5 <= lag <= 20 * 60 + 60


def test_sync_lag_and_cache_outcomes_are_exported(client):
    sync.sync_features()
    inbo_redis.state().hset(keys.feed_cache_stats(), mapping={"hit": 3, "miss": 2})
    text = _metrics(client)
    assert "inbo_features_sync_lag_seconds" in text
    assert 'inbo_feed_cache_requests_total{outcome="hit"} 3.0' in text
    assert 'inbo_feed_cache_requests_total{outcome="miss"} 2.0' in text


def test_metrics_still_answer_without_redis(client, settings):
    settings.REDIS_STATE_URL = "redis://127.0.0.1:1/0"
    inbo_redis.reset_clients()
    text = _metrics(client)
    assert "inbo_features_quarantined_counters 0.0" in text
    assert "inbo_features_sync_backlog_items" not in text


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_readiness_workers_beat_and_queues_are_exported(client):
    write_heartbeat("celery@test")
    record_sent("inbo.features.sync", now=time.time() - 30)
    record_sent("no.longer.scheduled")
    # The broker database is the test run's own: one message waits in a queue.
    checks.probe(settings.REDIS_BROKER_URL).delete("maintenance")
    checks.probe(settings.REDIS_BROKER_URL).rpush("maintenance", "{}")
    try:
        text = _metrics(client)
    finally:
        checks.probe(settings.REDIS_BROKER_URL).delete("maintenance")
    assert 'inbo_health_check_up{check="postgres",critical="true"} 1.0' in text
    assert 'inbo_health_check_up{check="redis_state",critical="true"} 1.0' in text
    assert 'check="search"' not in text or checks.search_health_function() is not None
    assert "inbo_ready 1.0" in text
    assert "inbo_celery_workers_alive 1.0" in text
    assert 'inbo_celery_queue_messages{queue="maintenance"} 1.0' in text
    age = re.search(r'inbo_beat_last_run_age_seconds\{task="inbo.features.sync"\} (\S+)', text)
    assert age is not None and 29 <= float(age.group(1)) < 60
    assert "no.longer.scheduled" not in text
    assert re.search(r"inbo_beat_heartbeat_age_seconds \d", text)


def test_without_a_worker_the_gauge_says_zero(client):
    assert "inbo_celery_workers_alive 0.0" in _metrics(client)


def test_feed_latency_is_observed_by_section(auth_client):
    home_before = _sample("inbo_feed_latency_seconds_count", section="home")
    invalid_before = _sample("inbo_feed_latency_seconds_count", section="invalid")
    assert auth_client.get("/api/v1/experience/home/").status_code == 200
    response = auth_client.get("/api/v1/experience/home/sections/nope/?cursor=x")
    assert response.status_code in {400, 404}
    assert _sample("inbo_feed_latency_seconds_count", section="home") == home_before + 1
    assert _sample("inbo_feed_latency_seconds_count", section="invalid") == invalid_before + 1
    assert _sample("inbo_feed_latency_seconds_bucket", section="home", le="+Inf") >= 1


def _interaction(item_id: int, kind: str, event_id: str | None = None) -> dict:
    return {"event_id": event_id or str(uuid.uuid4()), "item_id": item_id, "type": kind}


def test_interactions_are_counted_by_type_and_outcome(auth_client):
    item = ItemFactory()
    before = {
        "click": _sample("inbo_interactions_received_total", type="click"),
        "read": _sample("inbo_interactions_received_total", type="read"),
        "accepted": _sample("inbo_interactions_total", outcome="accepted"),
        "duplicate": _sample("inbo_interactions_total", outcome="duplicate"),
        "rejected": _sample("inbo_interactions_total", outcome="rejected"),
    }
    repeated = str(uuid.uuid4())
    batch = [
        _interaction(item.id, "click", repeated),
        _interaction(item.id, "read"),
        _interaction(10**12, "click"),  # no such item: rejected
    ]
    url = "/api/v1/experience/interactions/"
    assert auth_client.post(url, {"interactions": batch}).status_code == 200
    assert auth_client.post(url, {"interactions": batch[:1]}).status_code == 200  # a retry
    assert _sample("inbo_interactions_received_total", type="click") == before["click"] + 2
    assert _sample("inbo_interactions_received_total", type="read") == before["read"] + 1
    assert _sample("inbo_interactions_total", outcome="accepted") == before["accepted"] + 2
    assert _sample("inbo_interactions_total", outcome="duplicate") == before["duplicate"] + 1
    assert _sample("inbo_interactions_total", outcome="rejected") == before["rejected"] + 1


def test_task_runs_failures_and_durations_come_from_celery_signals(settings):
    name = "inbo.monitoring.beat_heartbeat"
    runs = _sample("inbo_celery_task_runs_total", task=name, state="SUCCESS")
    durations = _sample("inbo_celery_task_duration_seconds_count", task=name)
    beat_heartbeat.apply()
    assert _sample("inbo_celery_task_runs_total", task=name, state="SUCCESS") == runs + 1
    assert _sample("inbo_celery_task_duration_seconds_count", task=name) == durations + 1

    failures = _sample("inbo_celery_task_failures_total", task=name, exception="ConnectionError")
    settings.REDIS_STATE_URL = "redis://127.0.0.1:1/0"
    inbo_redis.reset_clients()
    beat_heartbeat.apply()
    assert (
        _sample("inbo_celery_task_failures_total", task=name, exception="ConnectionError")
        == failures + 1
    )
    assert _sample("inbo_celery_task_runs_total", task=name, state="FAILURE") >= 1


def test_search_health_becomes_metrics_when_search_app_reports_it(client, monkeypatch):
    module = types.ModuleType("search_app.public")
    module.health = lambda: {  # type: ignore[attr-defined]  # search_app.public.health's shape
        "backend": "meilisearch",
        "up": True,
        "latency_ms": 12.0,
        "documents": {"items": 10, "providers": 2},
        "drift": {"items": 3, "providers": 0},
        "settings_drift": False,
        "outbox": {"pending": 5, "in_flight": 1, "failed": 0, "dead": 2},
        "oldest_pending_age_seconds": 40.0,
        "last_indexed_at": "2026-01-01T00:00:00+00:00",
        "last_indexed_age_seconds": 61.0,
        "search_latency_p95_ms": 80.0,
        "zero_result_rate": 0.25,
    }
    monkeypatch.setitem(sys.modules, "search_app.public", module)
    text = _metrics(client)
    assert "inbo_search_backend_up 1.0" in text
    assert "inbo_search_backend_latency_seconds 0.012" in text
    assert "inbo_search_settings_drift 0.0" in text
    assert 'inbo_search_index_drift_documents{doc_type="items"} 3.0' in text
    assert "inbo_search_indexing_pending 5.0" in text
    assert "inbo_search_indexing_dead_letters 2.0" in text
    assert "inbo_search_indexing_oldest_pending_age_seconds 40.0" in text
    assert "inbo_search_latency_p95_seconds 0.08" in text
    assert "inbo_search_zero_result_ratio 0.25" in text
    assert "inbo_search_last_indexed_age_seconds 61.0" in text
    assert 'inbo_search_indexing_outbox_rows{status="in_flight"} 1.0' in text
    assert 'inbo_search_index_documents{doc_type="providers"} 2.0' in text


def test_search_figures_may_be_grouped_and_dated():
    report = {
        "backend": {"up": False, "latency_ms": 3.0},
        "outbox": {"pending": 1},
        "last_indexed_at": time.time() - 30,
        "drift": None,
    }
    text = {m.name: m.samples[0].value for m in metrics.search_metrics(report)}
    assert text["inbo_search_backend_up"] == 0.0
    assert text["inbo_search_indexing_pending"] == 1.0
    assert 29 <= text["inbo_search_last_indexed_age_seconds"] < 60
    assert "inbo_search_index_drift_documents" not in text


def test_no_search_metrics_without_a_search_health_report(client, monkeypatch):
    monkeypatch.setitem(sys.modules, "search_app.public", types.ModuleType("search_app.public"))
    assert "inbo_search_" not in _metrics(client)
