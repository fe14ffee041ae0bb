"""Nothing INBO or its tests flush is someone else's Redis database (issue 9, point 18)."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from inbo import keys
from tests import redis_guard

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
pytestmark = pytest.mark.slow  # starts its own redis-server


def test_tests_settings_use_only_the_databases_the_readme_names(settings):
    """README, "Tests and Redis": databases 12-15, one per role."""
    databases = {
        name: url.rsplit("/", 1)[-1] for name, url in redis_guard.guarded_databases().items()
    }
    if not all(os.environ.get(name) for name in redis_guard.ROLE_SETTINGS):
        assert databases == {
            "REDIS_BROKER_URL": "13",
            "REDIS_CACHE_URL": "14",
            "REDIS_STATE_URL": "15",
            "REDIS_EVAL_URL": "12",
        }
    assert "databases 12\u201315" in (ROOT / "README.md").read_text()


def test_a_database_holding_foreign_keys_is_refused_and_a_marked_or_empty_one_accepted(
    redis_server, settings
):
    settings.REDIS_STATE_URL = redis_server.url(5)
    settings.REDIS_CACHE_URL = redis_server.url(6)
    settings.REDIS_BROKER_URL = redis_server.url(7)
    settings.REDIS_EVAL_URL = redis_server.url(8)
    assert redis_guard.check_databases() is None  # empty
    redis_server.client(5).set("someone:else:counter", "41")
    message = redis_guard.check_databases()
    assert message is not None
    assert "database 5 (REDIS_STATE_URL)" in message
    assert "someone:else:counter" in message
    redis_server.client(5).set(keys.scratch_marker(), "inbo-tests")
    assert redis_guard.check_databases() is None  # the suite's own, from an earlier run


def test_a_test_run_stops_before_flushing_a_database_holding_foreign_keys(redis_server):
    foreign = redis_server.client(0)
    foreign.set("another:installation:interests", "kept")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "REDIS_STATE_URL": redis_server.url(0),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--no-cov",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/inbo/test_settings.py::test_env_readers_reject_garbage",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "holds keys the test suite did not write" in result.stdout + result.stderr
    assert foreign.get("another:installation:interests") == b"kept"
    assert foreign.dbsize() == 1


@pytest.mark.django_db
def test_evaluate_ranking_refuses_a_scratch_database_holding_foreign_keys(redis_server, settings):
    settings.REDIS_EVAL_URL = redis_server.url(3)
    scratch = redis_server.client(3)
    scratch.set("another:installation:state", "kept")
    with pytest.raises(CommandError, match="holds keys that no evaluation wrote"):
        call_command(
            "evaluate_ranking",
            "--news",
            str(FIXTURES / "mind_eval" / "news.tsv"),
            "--behaviors",
            str(FIXTURES / "mind_eval" / "behaviors.tsv"),
            stdout=StringIO(),
            stderr=StringIO(),
        )
    assert scratch.get("another:installation:state") == b"kept"
    assert scratch.dbsize() == 1  # no lock, no marker left behind


def test_memory_report_refuses_a_scratch_database_holding_foreign_keys(redis_server):
    scratch = redis_server.client(4)
    scratch.set("their:data", "1")
    with pytest.raises(CommandError, match="no scratch run wrote"):
        call_command(
            "features_memory_report",
            "--redis-url",
            redis_server.url(4),
            "--items",
            "50",
            "--users",
            "5",
            stdout=StringIO(),
        )
    assert scratch.get("their:data") == b"1"


def test_a_killed_scratch_run_leaves_its_marker_so_the_next_run_may_flush(redis_server):
    from inbo.scratch import ScratchLock

    client = redis_server.client(3)
    lock = ScratchLock(client, ttl_ms=60_000)
    lock.acquire()
    client.set("inbo:leftover", "1")
    client.delete(keys.evaluation_lock())  # the run died; its lock expired
    ScratchLock(client, ttl_ms=60_000).acquire()
    assert client.get("inbo:leftover") is None
