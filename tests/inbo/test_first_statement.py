"""A request's only statement as its connection's health check (inbo/first_statement.py).

Transactional tests: the statement stands in for the check only outside a transaction. A
request's start is what Django's ``request_started`` handler does to the connection
(``close_if_unusable_or_obsolete``: the check is due again).
"""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from inbo import first_statement
from tests.connections import request_starts, terminate_backend

pytestmark = pytest.mark.django_db(transaction=True)

PROBE = "SELECT %s::int + 1"


@pytest.fixture
def checks(monkeypatch) -> list[bool]:
    """Django's health checks run from now on, as they are (a spy, not a stand-in)."""
    ran: list[bool] = []
    is_usable = connection.is_usable

    def spied() -> bool:
        usable = is_usable()
        ran.append(usable)
        return usable

    monkeypatch.setattr(connection, "is_usable", spied)
    return ran


def test_the_first_statement_of_a_request_is_its_health_check(checks):
    request_starts()
    with CaptureQueriesContext(connection) as queries:
        assert first_statement.fetchall(PROBE, [41]) == [(42,)]
    assert checks == []  # no SELECT 1 before it
    assert len(queries) == 1
    assert connection.health_check_done
    # The request's next statements go as usual, without a check either.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert checks == []


def test_a_connection_broken_since_the_last_request_is_replaced(checks):
    request_starts()
    before = terminate_backend()

    with CaptureQueriesContext(connection) as queries:
        assert first_statement.fetchall(PROBE, [1]) == [(2,)]

    assert connection.connection.info.backend_pid != before
    assert len(queries) == 2  # sent on the broken connection, then on the new one
    assert checks == []
    with connection.cursor() as cursor:  # the request goes on on the new connection
        cursor.execute("SELECT 1")


def test_a_statements_own_error_on_a_live_connection_is_raised_not_sent_again(checks):
    request_starts()
    pid = connection.connection.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 1")
    try:
        request_starts()
        with CaptureQueriesContext(connection) as queries, pytest.raises(OperationalError):
            first_statement.fetchall("SELECT pg_sleep(1)", [])
        assert len(queries) == 1
        assert connection.connection.info.backend_pid == pid
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")


def test_inside_a_transaction_djangos_own_check_runs(checks):
    request_starts()
    with transaction.atomic():
        assert first_statement.fetchall(PROBE, [2]) == [(3,)]
    assert checks == [True]


def test_once_the_request_checked_its_connection_it_is_an_ordinary_statement(checks):
    request_starts()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert checks == [True]
    assert first_statement.fetchall(PROBE, [3]) == [(4,)]
    assert checks == [True]
