"""gunicorn with two workers in multiprocess mode: one /metrics for the whole group."""

from __future__ import annotations

import os
import re
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


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_metrics_sum_every_gunicorn_worker_and_keep_inbo_figures(tmp_path):
    db = settings.DATABASES["default"]
    auth = f"{db['USER']}:{db['PASSWORD']}" if db.get("PASSWORD") else db["USER"]
    port = free_port()
    multiproc = tmp_path / "web-metrics"
    multiproc.mkdir()
    (multiproc / "counter_1.db").write_bytes(b"stale")  # emptied when the master starts
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_BROKER_URL": settings.REDIS_BROKER_URL,
        "REDIS_CACHE_URL": settings.REDIS_CACHE_URL,
        "REDIS_STATE_URL": settings.REDIS_STATE_URL,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "inbo.wsgi:application",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--no-control-socket",
        ],
        cwd=ROOT,
        env=env,
        stdout=open(tmp_path / "gunicorn.log", "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(f"{base}/health/live/")
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.2)
        for _ in range(19):
            _get(f"{base}/health/live/")
        # Whichever worker answers, the count is the group's: every worker's file is summed.
        pattern = (
            r"django_http_requests_total_by_view_transport_method_total"
            r'\{method="GET",transport="http",view="health-live"\} (\S+)'
        )
        for _ in range(4):
            found = re.search(pattern, _get(f"{base}/metrics"))
            assert found is not None
            assert float(found.group(1)) == 20.0
        text = _get(f"{base}/metrics")
        assert "inbo_features_quarantined_counters" in text  # the scrape-time collector
        assert "inbo_ready" in text
        assert not (multiproc / "counter_1.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
