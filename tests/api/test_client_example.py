"""examples/inbo_client.py runs its demo against the live test server (issue 9, point 20)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.signals import request_started

from features_app.models import UserEvent
from search_app.models import SearchClick
from tests.api.conftest import Catalog

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "inbo_client.py"


def _load_client():
    spec = importlib.util.spec_from_file_location("inbo_client", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


inbo_client = _load_client()


@pytest.fixture
def server(http_server, catalog: Catalog, settings):
    settings.EXPERIENCE_SECTION_PAGE_SIZE = 3  # so that a section of the small catalog pages
    return http_server


def test_demo_signs_up_reads_the_home_reports_pages_searches_and_clicks(server):
    lines: list[str] = []
    out = inbo_client.demo(inbo_client.InboClient(server.url), username="ada", say=lines.append)

    assert out["user"]["username"] == "ada"
    assert out["interests"] == ["cooking", "rockets", "space"]
    assert [s["key"] for s in out["home"]["sections"] if s["items"]]
    reported, retried = out["reported"], out["retried"]
    assert reported["accepted"] == 4 and reported["duplicates"] == 0
    assert retried["accepted"] == 0 and retried["duplicates"] == 4
    assert UserEvent.objects.filter(user__username="ada").count() == 4
    page = out["section_page"]
    assert page["items"] and page["request_id"]
    assert out["search"]["total"] >= 1
    assert out["click"] == {"recorded": True}
    assert SearchClick.objects.count() == 1
    assert any("duplicates" in line for line in lines)


def test_client_raises_the_error_envelope_and_gives_up_on_429_after_its_retries(server, settings):
    client = inbo_client.InboClient(server.url, max_retries=0)
    with pytest.raises(inbo_client.ApiError) as wrong:
        client.sign_in("nobody", "wrong-password")
    assert (wrong.value.status, wrong.value.code) == (400, "invalid_credentials")

    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "auth": "1/min"}
    with pytest.raises(inbo_client.ApiError) as throttled:
        for _ in range(2):
            client.sign_in("nobody", "wrong-password")
    assert throttled.value.status == 429
    assert throttled.value.details["retry_after_seconds"] > 0


def test_client_retries_a_429_after_retry_after_then_gives_up(server, settings):
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "auth": "1/min"}
    client = inbo_client.InboClient(server.url, max_retries=2, max_wait=0.01)
    with pytest.raises(inbo_client.ApiError):
        client.sign_in("nobody", "wrong-password")  # 400, and the one request of the minute
    seen: list[str] = []

    def count(sender, environ, **kwargs):
        seen.append(environ["PATH_INFO"])

    request_started.connect(count, weak=False, dispatch_uid="client-retries")
    try:
        with pytest.raises(inbo_client.ApiError) as throttled:
            client.sign_in("nobody", "wrong-password")
    finally:
        request_started.disconnect(dispatch_uid="client-retries")
    assert throttled.value.code == "throttled"
    assert seen == ["/api/v1/auth/token/"] * 3  # the first try and two retries


def test_script_runs_standalone_with_a_base_url(server):
    done = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "--base-url", server.url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "signed up and signed in as reader-" in done.stdout
    assert "clicked result 1" in done.stdout


def test_script_says_when_the_server_is_not_there():
    done = subprocess.run(
        [sys.executable, "-I", str(SCRIPT), "--base-url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "cannot reach http://127.0.0.1:9" in done.stderr
