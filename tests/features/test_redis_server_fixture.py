"""The private Redis server fixture itself (``tests/redis_server.py``)."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings

from inbo import redis as inbo_redis
from tests.redis_server import point_state_at


def test_server_keeps_nothing_on_disk(redis_server):
    client = redis_server.client()
    assert client.config_get("save") == {"save": ""}
    assert client.config_get("appendonly") == {"appendonly": "no"}
    assert redis_server.url(3) == f"redis://127.0.0.1:{redis_server.port}/3"


def test_stop_and_start_come_back_empty_on_the_same_port(redis_server):
    redis_server.client().set("k", "v")
    port = redis_server.port
    redis_server.stop()
    assert not redis_server.running
    with pytest.raises(redis.ConnectionError):
        redis_server.client().ping()
    redis_server.start()
    assert redis_server.port == port
    assert redis_server.client().get("k") is None


def test_kill_then_start(redis_server):
    redis_server.kill()
    assert not redis_server.running
    redis_server.start()
    assert redis_server.client().ping()


def test_state_follows_the_server_and_is_restored(redis_server):
    original = settings.REDIS_STATE_URL
    with point_state_at(redis_server.url(2)):
        assert redis_server.url(2) == settings.REDIS_STATE_URL
        inbo_redis.state().set("probe", "1")
        assert redis_server.client(2).get("probe") == b"1"
    assert original == settings.REDIS_STATE_URL
    assert inbo_redis.state().get("probe") is None  # the shared test database again


def test_state_server_outage_raises_redis_errors(redis_state_server):
    redis_state_server.stop()
    with pytest.raises(redis.ConnectionError):
        inbo_redis.state().ping()
