"""The web server (granian, two workers) in multiprocess mode: one /metrics for the group."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
HEALTH_LIVE_COUNT = (
    r"django_http_requests_total_by_view_transport_method_total"
    r'\{method="GET",transport="http",view="health-live"\} (\S+)'
)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def _health_live_count(base: str) -> float:
    found = re.search(HEALTH_LIVE_COUNT, _get(f"{base}/metrics"))
    assert found is not None
    return float(found.group(1))


def _wait_until(check, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


def _workers(main_pid: int) -> set[int]:
    children = Path(f"/proc/{main_pid}/task/{main_pid}/children").read_text().split()
    return {int(pid) for pid in children}


def test_metrics_sum_every_web_worker_and_keep_a_dead_workers_counts(tmp_path):
    db = settings.DATABASES["default"]
    auth = f"{db['USER']}:{db['PASSWORD']}" if db.get("PASSWORD") else db["USER"]
    port = free_port()
    multiproc = tmp_path / "web-metrics"
    multiproc.mkdir()
    (multiproc / "counter_1.db").write_bytes(b"stale")  # emptied before the server starts
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_BROKER_URL": settings.REDIS_BROKER_URL,
        "REDIS_CACHE_URL": settings.REDIS_CACHE_URL,
        "REDIS_STATE_URL": settings.REDIS_STATE_URL,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "WEB_CONCURRENCY": "2",
        "WEB_GRACEFUL_TIMEOUT_SECONDS": "5",
    }
    log = tmp_path / "server.log"
    # As `make run` and the image start it (scripts/run, Dockerfile).
    proc = subprocess.Popen(
        [sys.executable, "-m", "inbo.server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=open(log, "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until(lambda: _get(f"{base}/health/live/") and len(_workers(proc.pid)) == 2, log)
        for _ in range(19):
            _get(f"{base}/health/live/")
        # Whichever worker answers, the count is the group's: every worker's file is summed.
        for _ in range(4):
            assert _health_live_count(base) == 20.0
        text = _get(f"{base}/metrics")
        assert "inbo_features_quarantined_counters" in text  # the scrape-time collector
        assert "inbo_ready" in text
        assert not (multiproc / "counter_1.db").exists()

        # A worker that dies is replaced; what it counted still counts (its files stay until
        # the next start), so the group's counters never go back.
        victim = min(_workers(proc.pid))
        os.kill(victim, signal.SIGKILL)
        _wait_until(lambda: victim not in _workers(proc.pid), log)
        _wait_until(lambda: len(_workers(proc.pid)) == 2 and _get(f"{base}/health/live/"), log)
        assert _health_live_count(base) >= 21.0
        assert any(path.name.endswith(f"_{victim}.db") for path in multiproc.iterdir())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
