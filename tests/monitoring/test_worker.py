"""A real prefork worker and beat: heartbeats, beat's last-run times, the worker's /metrics."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings

from inbo import keys
from inbo import redis as inbo_redis
from inbo.celery import app
from monitoring import checks
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
TASK = "inbo.monitoring.beat_heartbeat"


def _wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def _runs(port: int) -> float:
    found = re.search(
        rf'inbo_celery_task_runs_total\{{state="SUCCESS",task="{TASK}"\}} (\S+)', _scrape(port)
    )
    return float(found.group(1)) if found else 0.0


@pytest.fixture
def celery_processes(tmp_path):
    started: list[subprocess.Popen] = []

    def start(*args: str, env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "inbo", *args],
            cwd=ROOT,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.settings",
                "REDIS_BROKER_URL": settings.REDIS_BROKER_URL,
                "REDIS_STATE_URL": settings.REDIS_STATE_URL,
                "REDIS_CACHE_URL": settings.REDIS_CACHE_URL,
                **env,
            },
            stdout=open(tmp_path / f"{args[0]}.log", "w"),  # noqa: SIM115 - closed with the process
            stderr=subprocess.STDOUT,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_prefork_worker_heartbeats_and_exports_its_children_task_metrics(
    celery_processes, tmp_path
):
    state = inbo_redis.state()
    app.connection_for_write().default_channel.client.flushdb()  # an empty test broker db
    port = free_port()
    multiproc = tmp_path / "worker-metrics"
    multiproc.mkdir()
    node = f"inbo-test-{uuid.uuid4().hex[:8]}@localhost"
    worker = celery_processes(
        "worker",
        "-Q",
        "default,events,features,search,maintenance",
        "--pool",
        "prefork",
        "--concurrency",
        "2",
        "--without-mingle",
        "--without-gossip",
        "-n",
        node,
        env={
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
            "WORKER_METRICS_PORT": str(port),
            "WORKER_METRICS_ADDR": "127.0.0.1",
            "WORKER_HEARTBEAT_SECONDS": "1",
        },
    )
    celery_processes(
        "beat",
        "--schedule",
        str(tmp_path / "schedule"),
        env={"BEAT_HEARTBEAT_SECONDS": "1"},
    )

    def logs() -> str:
        return "".join(p.read_text() for p in tmp_path.glob("*.log"))

    assert _wait_for(lambda: state.zscore(keys.worker_heartbeats(), node)), logs()
    assert node in checks.check_workers().data["alive"]
    # Beat records what it sends; the heartbeat task it sends runs in a prefork child, whose
    # samples the worker's main process exports.
    assert _wait_for(lambda: state.hget(keys.beat_last_run(), TASK)), logs()
    assert float(state.hget(keys.beat_last_run(), TASK)) == pytest.approx(time.time(), abs=30)
    assert _wait_for(lambda: _runs(port) >= 2), logs() + _scrape(port)
    text = _scrape(port)
    assert f'inbo_celery_task_duration_seconds_count{{task="{TASK}"}}' in text
    # The task ran in a prefork child: its samples are in a file of its own pid.
    assert {f.name for f in multiproc.glob("counter_*.db")} - {f"counter_{worker.pid}.db"}

    worker.terminate()  # a warm shutdown takes the worker out of the heartbeat set at once
    worker.wait(timeout=20)
    assert state.zscore(keys.worker_heartbeats(), node) is None
