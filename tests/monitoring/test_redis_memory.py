"""Redis memory per role in /metrics: what InboRedisMemoryHigh and InboRedisEvicting read."""

from __future__ import annotations

import re

import pytest

from inbo import keys
from inbo import redis as inbo_redis

pytestmark = pytest.mark.django_db


def _value(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    match = re.search(rf"^{name}\{{{re.escape(wanted)}\}} (\S+)$", text, re.M)
    return float(match[1]) if match else None


def test_every_role_exports_memory_keys_and_evictions(client):
    inbo_redis.state().sadd(keys.dirty_items(), "1")  # the state database holds a key
    text = client.get("/metrics").content.decode()
    for role in ("broker", "cache", "state"):
        assert _value(text, "inbo_redis_used_memory_bytes", role=role) > 0, role
        assert _value(text, "inbo_redis_maxmemory_bytes", role=role) is not None, role
        assert _value(text, "inbo_redis_evicted_keys_total", role=role) is not None, role
        assert _value(text, "inbo_redis_expiring_keys", role=role) is not None, role
    assert _value(text, "inbo_redis_keys", role="state") == inbo_redis.state().dbsize()


@pytest.mark.slow  # its own redis-server, whose maxmemory the test may change
def test_used_ratio_and_policy_under_a_memory_limit(client, settings, redis_server):
    settings.REDIS_STATE_URL = redis_server.url(2)
    server = redis_server.client(2)
    server.config_set("maxmemory", 64 * 1024 * 1024)
    server.config_set("maxmemory-policy", "noeviction")
    server.set("a", "1")
    text = client.get("/metrics").content.decode()
    used = _value(text, "inbo_redis_used_memory_bytes", role="state")
    assert _value(text, "inbo_redis_maxmemory_bytes", role="state") == 64 * 1024 * 1024
    assert _value(text, "inbo_redis_memory_used_ratio", role="state") == pytest.approx(
        used / (64 * 1024 * 1024)
    )
    assert _value(text, "inbo_redis_maxmemory_policy", policy="noeviction", role="state") == 1
    assert _value(text, "inbo_redis_keys", role="state") == 1
