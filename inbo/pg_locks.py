"""A PostgreSQL advisory lock held across transactions, on a direct connection only.

A job that runs many transactions one at a time (search indexing, the guardrail check) takes
``pg_try_advisory_lock`` on its connection's session and gives it back at the end. Behind
PgBouncer in transaction mode (``DATABASE_PGBOUNCER``, docs/SCALING.md "Connections") the
unlock could run on another server connection and the lock would stay held by whichever
session took it, so such a process refuses to take one: Celery worker and beat connect to
PostgreSQL directly. Locks that end with their transaction (``pg_advisory_xact_lock``) need
none of this.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection


@contextmanager
def session_lock(key: int) -> Iterator[bool]:
    """Try to take the session-level advisory lock ``key``; yields whether it was taken,
    and gives it back when the block ends."""
    if settings.DATABASE_PGBOUNCER:
        raise ImproperlyConfigured(
            "a session-level advisory lock needs a direct connection to PostgreSQL, not "
            "PgBouncer in transaction mode (DATABASE_PGBOUNCER); run this process with the "
            "direct DATABASE_URL"
        )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
