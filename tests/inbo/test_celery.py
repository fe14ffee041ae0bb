"""A real Celery worker and beat, started as processes against the test Redis broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from inbo import keys
from inbo import redis as inbo_redis
from inbo.celery import app

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _start(*args: str, tmp_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_BROKER_URL": settings.REDIS_BROKER_URL,
        "REDIS_STATE_URL": settings.REDIS_STATE_URL,
        "REDIS_CACHE_URL": settings.REDIS_CACHE_URL,
        "BEAT_HEARTBEAT_SECONDS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "inbo", *args],
        cwd=ROOT,
        env=env,
        stdout=open(tmp_path / f"{args[0]}.log", "w"),
        stderr=subprocess.STDOUT,
    )


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_beat_schedule_names_real_registered_tasks():
    app.loader.import_default_modules()
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks, entry["task"]
        assert "expires" in entry["options"]


def test_worker_and_beat_run_the_heartbeat(processes, tmp_path):
    """Beat schedules the heartbeat, a worker on the named queues runs it."""
    state = inbo_redis.state()
    app.connection_for_write().default_channel.client.flushdb()  # an empty test broker db
    processes.append(
        _start(
            "worker",
            "-Q",
            "default,events,features,search,maintenance",
            "--concurrency",
            "1",
            "--pool",
            "solo",
            "--without-mingle",
            "--without-gossip",
            tmp_path=tmp_path,
        )
    )
    processes.append(_start("beat", "--schedule", str(tmp_path / "schedule"), tmp_path=tmp_path))
    ok = _wait_for(lambda: state.get(keys.beat_heartbeat()) is not None)
    logs = "".join(p.read_text() for p in tmp_path.glob("*.log"))
    assert ok, logs
    assert float(state.get(keys.beat_heartbeat())) == pytest.approx(time.time(), abs=60)
    assert state.ttl(keys.beat_heartbeat()) > 0
