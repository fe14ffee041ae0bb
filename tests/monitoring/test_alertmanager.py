"""Alerts reach a person: a firing rule goes from a real Prometheus through a real Alertmanager
(monitoring/alertmanager/alertmanager.yml, its routes and inhibitions) to a webhook this test
runs. The rules are the real ones from alerts.yml, with an expression that is true at once and
no ``for``; the Alertmanager config is the real one with the test's receiver URLs and short
group timings."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER_CONFIG = ROOT / "monitoring/alertmanager/alertmanager.yml"
ALERT_RULES = ROOT / "monitoring/prometheus/alerts.yml"


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(f"{names[0]} is not installed (scripts/test installs the Debian package)")


# --- the webhook receiver ----------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    received: queue.Queue[tuple[str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.put((self.path, json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, queue.Queue[tuple[str, dict[str, Any]]]]]:
    received: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


# --- configs -----------------------------------------------------------------------------


def _alertmanager_config(receiver_base: str) -> dict[str, Any]:
    """The checked-in config, delivering to the test's receiver at once."""
    config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{receiver_base}/{receiver['name']}"
    routes = [config["route"], *config["route"].get("routes", [])]
    for route in routes:
        route.update({"group_wait": "1s", "group_interval": "1s"})
    return config


def _rule(name: str, expr: str) -> dict[str, Any]:
    """The rule ``name`` of alerts.yml, firing now: ``expr`` instead of its own, no ``for``."""
    for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == name:
                rule = {**rule, "expr": expr}
                rule.pop("for", None)
                return rule
    raise AssertionError(f"{name} is not in alerts.yml")


def _start(args: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=log.open("w"), stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


@pytest.mark.slow
def test_firing_rule_reaches_the_webhook_through_alertmanager_and_consequences_are_inhibited(
    webhook, tmp_path: Path
):
    prometheus = _binary("prometheus")
    alertmanager = _binary("prometheus-alertmanager", "alertmanager")
    receiver_base, received = webhook

    am_port = free_port()
    am_config = tmp_path / "alertmanager.yml"
    am_config.write_text(yaml.safe_dump(_alertmanager_config(receiver_base)))
    rules = tmp_path / "rules.yml"
    redis_down = _rule(
        "InboRedisDown", 'label_replace(vector(0), "check", "redis_state", "", "") == 0'
    )
    # Redis down (the cause) first; the counter alert it explains is added once the cause has
    # been delivered: Alertmanager inhibits what arrives after the cause, as a real consequence
    # does (its `for` is 5m), not what arrives in the same batch.
    rules.write_text(yaml.safe_dump({"groups": [{"name": "inbo-test", "rules": [redis_down]}]}))
    prom_port = free_port()
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        yaml.safe_dump(
            {
                "global": {"evaluation_interval": "1s", "scrape_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
            }
        )
    )
    procs = [
        _start(
            [
                alertmanager,
                f"--config.file={am_config}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",  # no gossip port: one instance, nothing to clash
            ],
            tmp_path / "alertmanager.log",
        ),
        _start(
            [
                prometheus,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                # The first send can precede the discovery of the Alertmanager and be dropped;
                # resend every second instead of every minute.
                "--rules.alert.resend-delay=1s",
            ],
            tmp_path / "prometheus.log",
        ),
    ]

    def logs() -> str:
        return "".join(p.read_text()[-2000:] for p in tmp_path.glob("*.log"))

    try:
        try:
            path, payload = received.get(timeout=60)
        except queue.Empty:
            pytest.fail(f"no notification reached the webhook\n{logs()}")
        # The page route delivered it, with the rule's labels and rendered annotations.
        assert path == "/page"
        assert payload["receiver"] == "page"
        assert payload["status"] == "firing"
        [alert] = payload["alerts"]
        assert alert["labels"]["alertname"] == "InboRedisDown"
        assert alert["labels"]["severity"] == "page"
        assert alert["labels"]["check"] == "redis_state"
        assert alert["annotations"]["summary"] == "Redis redis_state does not answer."
        assert "docs/OPERATIONS.md#inboredisdown" in alert["annotations"]["runbook"]

        # The counter alert, added now, reaches Alertmanager and is held back while Redis is down.
        lagging_rule = _rule("InboCounterSyncLagging", "vector(700) > 600")
        rules.write_text(
            yaml.safe_dump({"groups": [{"name": "inbo-test", "rules": [redis_down, lagging_rule]}]})
        )
        procs[1].send_signal(signal.SIGHUP)  # Prometheus reloads its config and rules
        api = f"http://127.0.0.1:{am_port}/api/v2/alerts"
        lagging: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while not lagging and time.monotonic() < deadline:
            lagging = [
                a
                for a in _get_json(api) or []
                if a["labels"]["alertname"] == "InboCounterSyncLagging"
            ]
            if not lagging:
                time.sleep(0.3)
        assert lagging, logs()
        assert lagging[0]["status"]["state"] == "suppressed"
        assert lagging[0]["status"]["inhibitedBy"]
        while not received.empty():
            _, more = received.get_nowait()
            names = {a["labels"]["alertname"] for a in more["alerts"]}
            assert "InboCounterSyncLagging" not in names
    finally:
        for proc in procs:
            _stop(proc)


def _route(*labels: str) -> str:
    amtool = _binary("amtool")
    run = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}", *labels],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_pages_and_tickets_go_to_their_own_receivers():
    assert _route("alertname=InboRedisDown", "severity=page") == "page"
    assert _route("alertname=InboSearchSettingsDrift", "severity=ticket", "area=search") == "ticket"
    assert _route("alertname=Unlabelled") == "ticket"
