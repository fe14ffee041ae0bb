"""A private primary and its streaming replica for this directory's tests.

``scripts/replica.sh`` builds them in a temporary directory (initdb, ``pg_basebackup -R``) on
the ports ``tests/replica/settings.py`` chose; the schema is migrated on the primary and
streams to the replica. No test database and no rollback: the tests commit on the primary
(each writes rows of its own) and the cluster is deleted at the end of the session.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from inbo import replicas

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "replica.sh"
REPLICA_SETTINGS = "tests.replica.settings"


def running_with_replica_settings() -> bool:
    return os.environ.get("DJANGO_SETTINGS_MODULE") == REPLICA_SETTINGS


@dataclass
class Cluster:
    env: dict[str, str]

    def script(self, command: str) -> None:
        subprocess.run([str(SCRIPT), command], env=self.env, check=True, capture_output=True)

    def crash_replica(self) -> None:
        self.script("crash")

    def start(self) -> None:
        self.script("start")

    @staticmethod
    def port(alias: str) -> int:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT inet_server_port()")
            return cursor.fetchone()[0]

    @staticmethod
    def wait_replayed(timeout: float = 15.0) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_current_wal_lsn()::text")
            target = cursor.fetchone()[0]
        deadline = time.monotonic() + timeout
        while True:
            with connections["replica_1"].cursor() as cursor:
                cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
                if cursor.fetchone()[0]:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"the replica did not replay up to {target}")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def cluster(django_db_blocker) -> Iterator[Cluster]:
    if not running_with_replica_settings():
        pytest.skip(f"needs --ds={REPLICA_SETTINGS} (scripts/test runs it)")
    # Under /tmp: the servers run as the postgres user, who must enter the directory.
    directory = tempfile.mkdtemp(prefix="inbo-replica-")
    found = Cluster(env={**os.environ, "REPLICA_DIR": directory})
    try:
        found.start()
        with django_db_blocker.unblock():
            call_command("migrate", verbosity=0)
            yield found
            connections.close_all()
    finally:
        subprocess.run([str(SCRIPT), "destroy"], env=found.env, check=False)


@pytest.fixture
def streaming(cluster: Cluster, django_db_blocker) -> Iterator[Cluster]:
    """The replica runs, replays, has caught up, and no process state remembers a check."""
    cluster.start()
    with django_db_blocker.unblock():
        connections.close_all()
        with connections["replica_1"].cursor() as cursor:
            cursor.execute("SELECT pg_wal_replay_resume()")
        cluster.wait_replayed()
        replicas.health_reset()
        yield cluster
        replicas.health_reset()
        connections.close_all()
