"""Helpers for tests of what a request does with its database connection."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection


def request_starts() -> None:
    """What Django's ``request_started`` handler does to a connection kept from an earlier
    request (``close_if_unusable_or_obsolete``): its health check is due again. Skips the
    test where connections are not kept between requests (``CONN_MAX_AGE`` 0, a pool)."""
    if connection.settings_dict["CONN_MAX_AGE"] == 0 or connection.pool is not None:
        pytest.skip("connections are not kept between requests")
    connection.ensure_connection()
    connection.close_if_unusable_or_obsolete()
    if connection.connection is None:  # it had outlived CONN_MAX_AGE: a new one, kept
        connection.ensure_connection()
        connection.close_if_unusable_or_obsolete()
    assert connection.connection is not None and not connection.health_check_done


def terminate_backend() -> int:
    """The server ends the connection, as a restart or a pooler's timeout would; its pid."""
    pid = int(connection.connection.info.backend_pid)
    params = connection.get_connection_params()
    keep = ("dbname", "user", "password", "host", "port")
    with psycopg.connect(**{k: v for k, v in params.items() if k in keep}, autocommit=True) as c:
        c.execute("SELECT pg_terminate_backend(%s)", [pid])
        # Gone once the server has finished with it.
        c.execute(
            "SELECT pg_sleep(0.05) FROM generate_series(1, 100) "
            "WHERE EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = %s) LIMIT 1",
            [pid],
        )
    return pid
