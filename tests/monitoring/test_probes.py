"""The worker's and beat's own health probes (docker health checks): real worker, real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from inbo import keys
from inbo import redis as inbo_redis
from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
TASK = "inbo.monitoring.beat_heartbeat"


@pytest.fixture
def clean_beat_state():
    state = inbo_redis.state()
    state.delete(keys.beat_last_run(), keys.beat_heartbeat())
    yield state
    state.delete(keys.beat_last_run(), keys.beat_heartbeat())


def test_beat_probe_passes_when_beat_sent_a_task_recently(clean_beat_state, capsys):
    clean_beat_state.hset(keys.beat_last_run(), TASK, f"{time.time() - 5:.3f}")
    call_command("beat_probe")
    assert "last sign" in capsys.readouterr().out


def test_beat_probe_fails_when_beat_last_sent_longer_ago_than_the_limit(clean_beat_state):
    stale = time.time() - settings.BEAT_MAX_AGE_SECONDS - 60
    clean_beat_state.hset(keys.beat_last_run(), TASK, f"{stale:.3f}")
    with pytest.raises(CommandError, match="last sign of beat"):
        call_command("beat_probe")


def test_beat_probe_honours_its_max_age_option(clean_beat_state):
    clean_beat_state.hset(keys.beat_last_run(), TASK, f"{time.time() - 30:.3f}")
    call_command("beat_probe", max_age=60)
    with pytest.raises(CommandError):
        call_command("beat_probe", max_age=10)


def test_beat_probe_fails_when_beat_was_never_seen(clean_beat_state):
    with pytest.raises(CommandError, match="never been seen"):
        call_command("beat_probe")


def test_beat_probe_exits_non_zero_from_the_command_line(clean_beat_state):
    """What docker runs: the exit status, not an exception, says unhealthy."""
    stale = time.time() - settings.BEAT_MAX_AGE_SECONDS - 60
    clean_beat_state.hset(keys.beat_last_run(), TASK, f"{stale:.3f}")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    cmd = [sys.executable, "manage.py", "beat_probe"]
    stale_run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert stale_run.returncode == 1, stale_run.stderr
    clean_beat_state.hset(keys.beat_last_run(), TASK, f"{time.time():.3f}")
    fresh_run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=60)
    assert fresh_run.returncode == 0, fresh_run.stderr


def test_worker_probe_fails_when_no_worker_has_that_node_name():
    with pytest.raises(CommandError, match="did not answer"):
        call_command("worker_probe", node=f"nobody-{uuid.uuid4().hex[:8]}@nowhere", timeout=0.5)


def test_worker_probe_exits_non_zero_when_the_broker_is_unreachable():
    # A subprocess: the probe reads the broker from its environment, as in the container.
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_BROKER_URL": dead,
        "CELERY_BROKER_URL": dead,
    }
    run = subprocess.run(
        [sys.executable, "manage.py", "worker_probe", "--timeout", "0.5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert "broker unreachable" in run.stderr


@pytest.mark.slow
def test_worker_probe_answers_for_a_running_worker_and_not_after_it_stops(tmp_path):
    node = f"inbo-probe-{uuid.uuid4().hex[:8]}@localhost"
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed at the end
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "inbo",
            "worker",
            "--pool",
            "solo",
            "--without-mingle",
            "--without-gossip",
            "-n",
            node,
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "REDIS_BROKER_URL": settings.REDIS_BROKER_URL,
            "REDIS_STATE_URL": settings.REDIS_STATE_URL,
            "REDIS_CACHE_URL": settings.REDIS_CACHE_URL,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        answered = False
        while not answered and time.monotonic() < deadline and worker.poll() is None:
            try:
                call_command("worker_probe", node=node, timeout=1)
                answered = True
            except CommandError:
                time.sleep(0.5)
        assert answered, (tmp_path / "worker.log").read_text()[-3000:]
        worker.terminate()
        worker.wait(timeout=20)
        with pytest.raises(CommandError, match="did not answer"):
            call_command("worker_probe", node=node, timeout=1)
    finally:
        if worker.poll() is None:
            worker.kill()
        log.close()
