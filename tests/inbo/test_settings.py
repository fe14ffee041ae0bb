"""Settings come from the environment; production-like values pass the deploy checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from inbo.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_redis_role_url,
    redis_db_of,
    redis_url_with_db,
)

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


def test_redis_roles_take_consecutive_databases_from_the_one_in_redis_url(monkeypatch):
    for name in ("REDIS_BROKER_URL", "REDIS_CACHE_URL", "REDIS_STATE_URL", "REDIS_EVAL_URL"):
        monkeypatch.delenv(name, raising=False)
    base = "redis://:pw@h:6379/4?ssl_cert_reqs=none"
    assert [
        env_redis_role_url(name, base, offset)
        for offset, name in enumerate(("REDIS_BROKER_URL", "REDIS_CACHE_URL", "REDIS_STATE_URL"))
    ] == [
        "redis://:pw@h:6379/4?ssl_cert_reqs=none",
        "redis://:pw@h:6379/5?ssl_cert_reqs=none",
        "redis://:pw@h:6379/6?ssl_cert_reqs=none",
    ]
    assert env_redis_role_url("REDIS_EVAL_URL", "redis://h", 3) == "redis://h/3"
    assert env_redis_role_url("REDIS_EVAL_URL", "unix:///run/r.sock?db=2", 3) == (
        "unix:///run/r.sock?db=5"
    )
    assert redis_db_of("redis://h:6379") == 0
    assert redis_db_of("redis://h/?db=7") == 7
    with pytest.raises(ImproperlyConfigured, match="database number"):
        redis_db_of("redis://h/abc")


def test_redis_roles_past_the_last_database_are_refused_unless_set_explicitly(monkeypatch):
    monkeypatch.delenv("REDIS_EVAL_URL", raising=False)
    monkeypatch.delenv("REDIS_STATE_URL", raising=False)
    assert env_redis_role_url("REDIS_STATE_URL", "redis://h/12", 2) == "redis://h/14"
    assert env_redis_role_url("REDIS_EVAL_URL", "redis://h/12", 3) == "redis://h/15"
    with pytest.raises(ImproperlyConfigured, match="REDIS_EVAL_URL would be database 16"):
        env_redis_role_url("REDIS_EVAL_URL", "redis://h/13", 3)
    monkeypatch.setenv("REDIS_EVAL_URL", "redis://other/0")
    assert env_redis_role_url("REDIS_EVAL_URL", "redis://h/13", 3) == "redis://other/0"


def test_settings_keep_the_operators_redis_database():
    """Two installations on one server (``/0`` and ``/4``) never share a database."""
    show = (
        "from django.conf import settings as s; "
        "print(s.REDIS_BROKER_URL, s.REDIS_CACHE_URL, s.REDIS_STATE_URL, s.REDIS_EVAL_URL, "
        "s.CELERY_BROKER_URL)"
    )
    result = _manage("shell", "-c", show, env={"REDIS_URL": "redis://h:6379/4"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == [
        "redis://h:6379/4",
        "redis://h:6379/5",
        "redis://h:6379/6",
        "redis://h:6379/7",
        "redis://h:6379/4",
    ]
    result = _manage("shell", "-c", show, env={"REDIS_URL": "redis://h:6379/14"})
    assert result.returncode != 0
    assert "REDIS_STATE_URL would be database 16" in result.stderr


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
