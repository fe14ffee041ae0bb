"""docker-compose.yml: every long-running service says whether it is healthy (MON-001)."""

from __future__ import annotations

from pathlib import Path

import yaml
from django.core.management import get_commands

ROOT = Path(__file__).resolve().parents[2]
ONE_SHOT = {"setup"}  # a job: its exit status is its health (service_completed_successfully)


def _services() -> dict[str, dict]:
    return dict(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])


def test_every_long_running_compose_service_has_a_healthcheck():
    missing = [
        name
        for name, svc in _services().items()
        if name not in ONE_SHOT and "healthcheck" not in svc
    ]
    assert missing == []


def test_worker_and_beat_health_checks_run_their_own_probe_commands():
    services = _services()
    commands = get_commands()
    for service, probe in (("worker", "worker_probe"), ("beat", "beat_probe")):
        test = services[service]["healthcheck"]["test"]
        assert probe in test
        assert commands.get(probe) == "monitoring"


def test_prometheus_sends_alerts_to_the_compose_alertmanager():
    config = yaml.safe_load((ROOT / "monitoring/prometheus/prometheus.yml").read_text())
    targets = [
        target
        for am in config["alerting"]["alertmanagers"]
        for static in am["static_configs"]
        for target in static["targets"]
    ]
    assert targets == ["alertmanager:9093"]
    assert "alertmanager" in _services()
