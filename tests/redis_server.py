"""A private ``redis-server`` process for tests that stop, kill or restart Redis.

The shared test Redis (databases 13-15 of the developer's server) must never be stopped by
a test. Tests that exercise "Redis is down" — degraded feeds, readiness checks, counter
restore — start their own server instead, through the ``redis_server`` fixture
(``tests/conftest.py``)::

    def test_ingest_survives_redis_outage(redis_state_server):
        redis_state_server.stop()     # SHUTDOWN NOSAVE, wait for the process to exit
        ...                           # the code under test sees "connection refused"
        redis_state_server.start()    # same port, empty data
        ...

``pause()`` / ``resume()`` hang the server (SIGSTOP / SIGCONT) instead: it accepts
connections and answers nothing, like a stuck node; :class:`SocketSends` counts the commands
that waited on it.

``redis_state_server`` is ``redis_server`` with ``settings.REDIS_STATE_URL`` pointed at it
(see :func:`point_state_at`). The server keeps nothing on disk (``--save ""``,
``--appendonly no``): a restart always comes back empty, like a replaced cache node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.test import override_settings
from redis.backoff import NoBackoff
from redis.connection import Connection
from redis.retry import Retry

from inbo import redis as inbo_redis

HOST = "127.0.0.1"
BINARY = "redis-server"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1:<port>``, working in ``workdir``.

    The port is chosen once, so :meth:`start` after :meth:`stop` or :meth:`kill` brings the
    server back at the same URL — clients configured before the outage reconnect to it.
    """

    def __init__(self, workdir: Path, *, port: int | None = None, binary: str = BINARY) -> None:
        self.workdir = Path(workdir)
        self.port = port if port is not None else free_port()
        self.binary = binary
        self.log_path = self.workdir / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    def __repr__(self) -> str:
        return f"<RedisServer {HOST}:{self.port} running={self.running}>"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, db: int = 0) -> str:
        """``redis://127.0.0.1:<port>/<db>``."""
        return f"redis://{HOST}:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        """A fresh client for direct inspection (not the application's cached one).

        It does not retry: redis-py's default (10 retries with backoff) would spend about
        four seconds on every call to a stopped server.
        """
        return redis.Redis(
            host=HOST, port=self.port, db=db, socket_timeout=2.0, retry=Retry(NoBackoff(), 0)
        )

    def _options(self) -> list[tuple[str, str]]:
        return [
            ("--port", str(self.port)),
            ("--bind", HOST),
            ("--save", ""),  # no RDB snapshots: a restart comes back empty
            ("--appendonly", "no"),
            ("--dir", str(self.workdir)),
            ("--daemonize", "no"),
        ]

    def start(self, timeout: float = 10.0) -> None:
        """Start the server (again, on the same port) and wait until it answers PING."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, *(arg for pair in self._options() for arg in pair)],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        probe = self.client()
        try:
            while True:
                if self._proc.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self._proc.returncode} on port "
                        f"{self.port}:\n{self._log_tail()}"
                    )
                with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):
                    if probe.ping():
                        return
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(
                        f"redis-server did not answer within {timeout}s:\n{self._log_tail()}"
                    )
                time.sleep(0.02)
        finally:
            probe.close()

    def pause(self) -> None:
        """SIGSTOP the server: a hung Redis. The kernel still accepts connections (backlog)
        and buffers what clients send, but nothing is answered: every call waits out its
        socket timeout, as with a stuck or swapping node."""
        assert self._proc is not None and self.running
        os.kill(self._proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT a paused server: it answers what was sent meanwhile, data intact."""
        if self._proc is not None and self.paused:
            os.kill(self._proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down cleanly (``SHUTDOWN NOSAVE``) and wait for it to exit.

        Falls back to SIGTERM, then SIGKILL, if the server does not go in time.
        """
        if not self.running:
            return
        self.resume()  # a stopped process would not hear SHUTDOWN
        assert self._proc is not None
        client = self.client()
        # The server drops the connection as it exits: the reply is an error, not "OK".
        with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
            client.shutdown(nosave=True)
        client.close()
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL the server (a crash: no shutdown, connections just vanish) and reap it."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.kill()  # SIGKILL ends a paused (SIGSTOP'd) process too
        self._proc.wait()
        self.paused = False

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class SocketSends:
    """Counts the commands (and pipelines) this process writes to the Redis at ``port``: to
    a paused server, each one is a wait of the socket timeout."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, port: int) -> None:
        self.count = 0
        original = Connection.send_packed_command

        def counted(conn: Connection, command: Any, check_health: bool = True) -> None:
            if conn.port == port:
                self.count += 1
            original(conn, command, check_health)

        monkeypatch.setattr(Connection, "send_packed_command", counted)


@contextlib.contextmanager
def running_redis_server(workdir: Path) -> Iterator[RedisServer]:
    """Start a :class:`RedisServer` in ``workdir``; it is killed on exit whatever happened."""
    if shutil.which(BINARY) is None:
        pytest.skip(f"{BINARY} is not on PATH")
    server = RedisServer(workdir)
    try:
        server.start()
        yield server
    finally:
        server.kill()


@contextlib.contextmanager
def point_state_at(url: str) -> Iterator[None]:
    """Make ``settings.REDIS_STATE_URL`` be ``url`` inside the block.

    The application caches its state client (:func:`inbo.redis.state`), so the cache is
    cleared on the way in and again on the way out — code after the block talks to the
    original server, not to one a test may have stopped.
    """
    try:
        with override_settings(REDIS_STATE_URL=url):
            inbo_redis.reset_clients()
            yield
    finally:
        inbo_redis.reset_clients()
