"""A request's only statement as its connection's health check.

With ``CONN_HEALTH_CHECKS`` (inbo/settings.py) Django sends ``SELECT 1`` before the first
statement of every request on a connection kept from an earlier one, and replaces the
connection if that fails. On a request whose only statement is small (a cached home's
never-again check) that round trip costs the client as much as the statement itself.
:func:`fetchall` lets the statement go first instead: if the connection broke since the
last request, the statement fails on it, the connection is closed, and the statement is
sent once more on a new one. That is what the health check would have done, one round trip
fewer when nothing was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, OperationalError, connections


def fetchall(
    sql: str, params: Sequence[Any] | Mapping[str, Any], *, using: str = DEFAULT_DB_ALIAS
) -> list[tuple[Any, ...]]:
    """The rows of ``sql``, a read (it may be sent twice), standing in for the connection's
    health check when it is the first statement of the request. Inside a transaction, or
    once the check is done, it is an ordinary statement (a statement cannot be sent again
    inside a transaction)."""
    # Any: django-stubs do not know the health check's attributes (Django's, since 4.1).
    connection: Any = connections[using]
    checks = (
        connection.connection is not None
        and connection.health_check_enabled
        and not connection.health_check_done
        and not connection.in_atomic_block
    )
    if checks:
        connection.health_check_done = True
    try:
        return _fetchall(connection, sql, params)
    except OperationalError:
        raw = connection.connection
        if not checks or (raw is not None and not raw.closed):
            raise  # not a connection broken before the request: its error, as it was
        connection.close()  # what a failed health check does
    return _fetchall(connection, sql, params)


def _fetchall(
    connection: Any, sql: str, params: Sequence[Any] | Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows
