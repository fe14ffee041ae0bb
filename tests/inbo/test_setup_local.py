"""The run command's set-up is idempotent: a second run changes nothing."""

from __future__ import annotations

import io
import uuid

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from inbo import setup


def _server_conninfo() -> dict:
    db = settings.DATABASES["default"]
    return {
        "host": db.get("HOST") or "127.0.0.1",
        "port": db.get("PORT") or 5432,
        "user": db.get("USER") or "postgres",
        "dbname": "postgres",
    }


def test_ensure_database_creates_once(settings):
    name = f"inbo_setup_{uuid.uuid4().hex[:8]}"
    databases = {"default": {**settings.DATABASES["default"], "NAME": name}}
    settings.DATABASES = databases
    try:
        assert setup.ensure_database() is True
        assert setup.ensure_database() is False
    finally:
        with psycopg.connect(**_server_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.mark.django_db(transaction=True)
def test_setup_local_twice_seeds_once_and_changes_nothing():
    first, second = io.StringIO(), io.StringIO()
    call_command("setup_local", skip_create_db=True, size="small", stdout=first)
    from reading_app.public import catalog_counts

    counts = catalog_counts()
    users = get_user_model().objects.count()
    assert counts["items"] > 0
    assert "demo admin   created" in first.getvalue()

    call_command("setup_local", skip_create_db=True, size="small", stdout=second)
    assert catalog_counts() == counts
    assert get_user_model().objects.count() == users
    assert "demo admin   exists" in second.getvalue()
    assert "catalog not empty" in second.getvalue()


@pytest.mark.django_db
def test_demo_admin_can_sign_in(client):
    assert setup.ensure_demo_admin() is True
    admin = get_user_model().objects.get(username=setup.DEMO_ADMIN_USERNAME)
    assert admin.is_staff and admin.is_superuser
    assert client.login(username="admin", password=settings.DEMO_USER_PASSWORD)
    assert client.get("/admin/").status_code == 200
