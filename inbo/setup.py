"""Idempotent local set-up used by the run command: database, schema, demo login, demo data.

Every step checks before it acts, so running it again changes nothing.
"""

from __future__ import annotations

import psycopg
from django.conf import settings
from django.contrib.auth import get_user_model
from psycopg import sql

DEMO_ADMIN_USERNAME = "admin"


def ensure_database(alias: str = "default") -> bool:
    """Create the configured PostgreSQL database if it is missing. Returns True if created.

    Connects to the server's ``postgres`` maintenance database with the same credentials,
    since the target database cannot be used to create itself.
    """
    db = settings.DATABASES[alias]
    name = db["NAME"]
    conninfo = psycopg.conninfo.make_conninfo(
        "",
        **{
            key: value
            for key, value in {
                "host": db.get("HOST"),
                "port": db.get("PORT"),
                "user": db.get("USER"),
                "password": db.get("PASSWORD"),
            }.items()
            if value
        },
        dbname="postgres",
        connect_timeout=5,
    )
    with psycopg.connect(conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return True


def ensure_demo_admin() -> bool:
    """Create the demo staff login (``admin`` / ``DEMO_USER_PASSWORD``) if missing."""
    User = get_user_model()
    if User.objects.filter(username=DEMO_ADMIN_USERNAME).exists():
        return False
    User.objects.create_superuser(
        DEMO_ADMIN_USERNAME, "admin@inbo.local", settings.DEMO_USER_PASSWORD
    )
    return True
