"""The web server as `make run` starts it, and nginx in front of it as compose runs it.

Issue 9, point 8: sixteen clients sending one header line every few seconds froze gunicorn
(every worker thread waited on a slow client). Granian reads requests on an event loop and
hands only complete ones to Django's threads; nginx, in compose, buffers whole requests.
These are liveness checks (the probe answers at all), not timings.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
NGINX_DIR = ROOT / "deploy" / "nginx"
SLOW_CLIENTS = 24  # more than the 2 workers x 4 threads that run Django
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def server_command(port: int) -> list[str]:
    """The web command of scripts/run (`make run`) and of the image, on ``port``."""
    return [sys.executable, "-m", "inbo.server", "--host", "127.0.0.1", "--port", str(port)]


def _env(**extra: str) -> dict[str, str]:
    db = settings.DATABASES["default"]
    auth = f"{db['USER']}:{db['PASSWORD']}" if db.get("PASSWORD") else db["USER"]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_BROKER_URL": settings.REDIS_BROKER_URL,
        "REDIS_CACHE_URL": settings.REDIS_CACHE_URL,
        "REDIS_STATE_URL": settings.REDIS_STATE_URL,
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "4",
        "WEB_GRACEFUL_TIMEOUT_SECONDS": "5",
        **extra,
    }


def _get(url: str, timeout: float = 3, headers: dict[str, str] | None = None):
    """(status, content type, body) of a GET, error statuses included."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def _wait_for(url: str, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        with contextlib.suppress(OSError):
            if _get(url)[0] == 200:
                return
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)


@contextlib.contextmanager
def running_server(tmp_path: Path, **env: str) -> Iterator[str]:
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    proc = subprocess.Popen(
        server_command(port),
        cwd=ROOT,
        env=_env(**env),
        stdout=open(log, "w"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/health/live/", log)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    with running_server(tmp_path) as base:
        yield base


@contextlib.contextmanager
def slow_clients(base: str, count: int = SLOW_CLIENTS) -> Iterator[list[socket.socket]]:
    """``count`` connections that started a request and are still sending its headers."""
    host, port = base.removeprefix("http://").split(":")
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"GET /health/live/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sockets.append(sock)
        for i, sock in enumerate(sockets):
            sock.sendall(f"X-Slow-{i}: one header line now and then\r\n".encode())
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Did the server give up on this connection (closed it, reset it, or answered it with
    an error) before ``within`` seconds passed?"""
    sock.settimeout(within)
    try:
        sock.recv(1024)
    except TimeoutError:
        return False
    except OSError:
        return True
    return True


def test_scripts_run_starts_the_web_server_with_this_command():
    run = (ROOT / "scripts" / "run").read_text()
    assert '"$PY" -m inbo.server --host "$HOST" --port "$PORT" &' in run
    assert '"python", "-m", "inbo.server"' in (ROOT / "Dockerfile").read_text()


def test_slow_header_clients_do_not_stop_health_probes(server):
    with slow_clients(server) as sockets:
        for _ in range(5):
            status, _, body = _get(f"{server}/health/live/", timeout=3)
            assert status == 200
            assert json.loads(body) == {"status": "ok"}
        # The slow clients are still connected: the probes were answered beside them.
        assert not _closed_by_server(sockets[0], within=0.1)


def test_a_client_that_never_finishes_its_headers_is_dropped(tmp_path):
    with (
        running_server(tmp_path, WEB_HEADER_TIMEOUT_SECONDS="1") as base,
        slow_clients(base, count=2) as sockets,
    ):
        assert all(_closed_by_server(sock, within=15) for sock in sockets)


def test_a_very_long_url_reaches_django_and_gets_the_json_envelope(server):
    status, content_type, body = _get(f"{server}/api/v1/items/{'a' * 10_000}/")
    assert status == 404
    assert content_type.startswith("application/json")
    assert json.loads(body)["error"]["code"] == "not_found"


# --- nginx in front, as docker-compose.yml runs it ---------------------------------------

needs_nginx = pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")


@contextlib.contextmanager
def running_nginx(tmp_path: Path, upstream: str) -> Iterator[str]:
    """deploy/nginx rendered as the official image renders it, on a free local port."""
    work = tmp_path / f"nginx-{free_port()}"
    work.mkdir()
    port = free_port()
    conf = (NGINX_DIR / "default.conf.template").read_text()
    conf = conf.replace("${INBO_WEB_UPSTREAM}", upstream)
    conf = conf.replace("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;")
    conf = conf.replace("/etc/nginx/inbo/proxy.inc", str(NGINX_DIR / "proxy.inc"))
    (work / "default.conf").write_text(conf)
    temp = " ".join(
        f"{kind}_temp_path {work / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (work / "nginx.conf").write_text(
        f"daemon off; pid {work / 'nginx.pid'}; error_log {work / 'error.log'};\n"
        f"events {{}}\nhttp {{ access_log {work / 'access.log'}; {temp}\n"
        f"include {work / 'default.conf'}; }}\n"
    )
    # -e: the error log before the configuration is read (the built-in path may not exist).
    command = [
        "nginx",
        "-e",
        str(work / "error.log"),
        "-c",
        str(work / "nginx.conf"),
        "-p",
        str(work),
    ]
    check = subprocess.run(
        [*command, "-t"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=open(work / "stderr.log", "w"),  # noqa: SIM115 - closed with the process
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, (work / "error.log").read_text()
            time.sleep(0.05)
        yield base
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _envelope(status: int, content_type: str, body: bytes) -> str:
    assert content_type.startswith("application/json"), (status, body[:200])
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "details"}
    return str(error["code"])


@needs_nginx
def test_nginx_answers_its_own_errors_in_the_envelope(server, tmp_path):
    with running_nginx(tmp_path, server.removeprefix("http://")) as proxy:
        status, _, body = _get(f"{proxy}/health/live/")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        # Long but within the proxy's limits: through to Django, which answers itself.
        status, *rest = _get(f"{proxy}/api/v1/items/{'a' * 10_000}/")
        assert (status, _envelope(status, *rest)) == (404, "not_found")
        status, *rest = _get(f"{proxy}/api/v1/items/{'a' * 20_000}/")
        assert (status, _envelope(status, *rest)) == (414, "uri_too_long")
        status, *rest = _get(f"{proxy}/api/v1/items/", headers={"X-Big": "b" * 20_000})
        assert (status, _envelope(status, *rest)) == (400, "bad_request")
        request = urllib.request.Request(
            f"{proxy}/api/v1/experience/interactions/",
            data=b"x" * 3_000_000,
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as too_large:
            urllib.request.urlopen(request, timeout=10)
        body = too_large.value.read()
        assert _envelope(413, too_large.value.headers["Content-Type"], body) == (
            "payload_too_large"
        )
        with slow_clients(proxy):
            assert _get(f"{proxy}/health/live/")[0] == 200


@needs_nginx
def test_nginx_answers_502_in_the_envelope_when_the_app_is_down(tmp_path):
    with running_nginx(tmp_path, f"127.0.0.1:{free_port()}") as proxy:
        status, content_type, body = _get(f"{proxy}/api/v1/items/")
        assert (status, _envelope(status, content_type, body)) == (502, "bad_gateway")
        status, content_type, body = _get(f"{proxy}/health/ready/")
        assert (status, _envelope(status, content_type, body)) == (502, "bad_gateway")
