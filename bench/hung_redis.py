"""Home and interactions with the state Redis hung (SIGSTOP), without and with the breaker.

    .venv/bin/pytest bench/hung_redis.py -s --no-cov -q

Runs on the test database and a private redis-server (the ``redis_state_server`` fixture of
the test suite, through ``bench/conftest.py``), with the production timeouts
(``REDIS_SOCKET_TIMEOUT`` 0.5 s). For each mode it pauses Redis, sends ``ROUNDS`` home
requests and interaction batches in turn, and prints each request's wall time and how many
commands waited on the hung socket. "without" sets ``REDIS_BREAKER_FAILURES`` out of reach,
which is the behaviour before the breaker. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import statistics
import time

import pytest

from inbo import redis as inbo_redis
from tests.experience.test_degraded import world  # noqa: F401 - the fixture, used by name
from tests.experience.utils import HOME, interaction, post_interactions
from tests.redis_server import SocketSends

pytestmark = pytest.mark.django_db
ROUNDS = 5


@pytest.mark.parametrize("mode", ["without", "with"])
def test_hung_redis_latency(mode, auth_client, world, settings, monkeypatch):  # noqa: F811
    settings.REDIS_SOCKET_TIMEOUT = 0.5
    settings.REDIS_BREAKER_FAILURES = 10**9 if mode == "without" else 2
    settings.REDIS_BREAKER_RESET_SECONDS = 5.0
    inbo_redis.reset_clients()
    auth_client.get(HOME)  # warm: connections open, feed cached
    sends = SocketSends(monkeypatch, world["server"].port)
    homes, posts = [], []
    world["server"].pause()
    try:
        for i in range(ROUNDS):
            started = time.perf_counter()
            assert auth_client.get(HOME).status_code == 200
            homes.append(time.perf_counter() - started)
            started = time.perf_counter()
            item = world["tech_items"][i]
            assert post_interactions(auth_client, interaction(item, "click")).status_code == 200
            posts.append(time.perf_counter() - started)
    finally:
        world["server"].resume()
    print(
        f"\n[{mode} breaker] home s: {' '.join(f'{t:.2f}' for t in homes)} "
        f"(median {statistics.median(homes):.2f}); interactions s: "
        f"{' '.join(f'{t:.2f}' for t in posts)} (median {statistics.median(posts):.2f}); "
        f"commands that waited on the hung socket: {sends.count}"
    )
