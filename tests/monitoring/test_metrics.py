from __future__ import annotations

import pytest
from django.utils import timezone

from features_app import sync
from features_app.models import CounterQuarantine
from inbo import keys
from inbo import redis as inbo_redis
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
