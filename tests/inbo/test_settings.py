"""Settings come from the environment; production-like values pass the deploy checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from inbo.env import env_bool, env_float, env_int, env_list, redis_url_with_db

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PGHOST"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "inbo.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_with_production_variables_reports_nothing():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "INBO_ENV": "production",
            "SECRET_KEY": "p" * 20 + "-production-secret-with-enough-entropy-0123456789abcdef",
            "ALLOWED_HOSTS": "api.inbo.example",
            "DATABASE_URL": "postgres://inbo:secret@db.internal:5432/inbo",
            "REDIS_URL": "redis://cache.internal:6379/0",
            "SEARCH_BACKEND": "meilisearch",
            "MEILISEARCH_URL": "http://search.internal:7700",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_local_defaults_are_flagged_by_deploy_checks():
    """The local defaults (DEBUG on, public dev key) must never pass as production."""
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env={})
    assert result.returncode != 0
    assert "security.W018" in result.stderr + result.stdout  # DEBUG on
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env={"DEBUG": "false"})
    assert result.returncode != 0
    assert "security.W009" in result.stderr + result.stdout  # the insecure dev key


def test_production_without_a_secret_key_refuses_to_start():
    result = _manage("check", env={"INBO_ENV": "production"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_redis_roles_get_separate_databases_from_one_url(settings):
    assert redis_url_with_db("redis://h:6379/0", 2) == "redis://h:6379/2"
    assert redis_url_with_db("rediss://:pw@h:6380", 1) == "rediss://:pw@h:6380/1"
    assert redis_url_with_db("redis://h/5?ssl_cert_reqs=none", 1) == (
        "redis://h/1?ssl_cert_reqs=none"
    )
    urls = {settings.REDIS_BROKER_URL, settings.REDIS_CACHE_URL, settings.REDIS_STATE_URL}
    assert len(urls) == 3
    assert settings.CELERY_BROKER_URL == settings.REDIS_BROKER_URL


def test_env_readers_reject_garbage(monkeypatch):
    monkeypatch.setenv("X_BOOL", "maybe")
    monkeypatch.setenv("X_INT", "ten")
    monkeypatch.setenv("X_LIST", " a, b ,,c ")
    with pytest.raises(ImproperlyConfigured, match="X_BOOL"):
        env_bool("X_BOOL", False)
    with pytest.raises(ImproperlyConfigured, match="X_INT"):
        env_int("X_INT", 1)
    assert env_list("X_LIST", []) == ["a", "b", "c"]
    monkeypatch.setenv("X_FLOAT", "fast")
    with pytest.raises(ImproperlyConfigured, match="X_FLOAT"):
        env_float("X_FLOAT", 0.5)
    monkeypatch.setenv("X_FLOAT", "0.25")
    assert env_float("X_FLOAT", 0.5) == 0.25
    assert env_bool("X_UNSET", True) is True
    with pytest.raises(ImproperlyConfigured):
        redis_url_with_db("not-a-url", 1)


def test_database_connections_are_bounded_and_skip_jit(settings):
    options = settings.DATABASES["default"]["OPTIONS"]
    assert options["connect_timeout"] == 5
    assert "-c statement_timeout=30000" in options["options"]
    assert "-c jit=off" in options["options"]
