"""``manage.py db_report`` on the real PostgreSQL, whose pg_stat_statements is preloaded (the
migrations created the extension in the test database)."""

from __future__ import annotations

import json
from importlib import import_module
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from monitoring import db_report


def _run(*args: str) -> str:
    out = StringIO()
    call_command("db_report", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def probe_table(db):
    """A table written 200 times with an index no query scans and one the other covers."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE db_report_probe (id int PRIMARY KEY, v int, w int)")
        cursor.execute("CREATE INDEX db_report_probe_v ON db_report_probe (v)")
        cursor.execute("CREATE INDEX db_report_probe_v_w ON db_report_probe (v, w)")
        cursor.execute(
            "INSERT INTO db_report_probe SELECT g, g % 10, g FROM generate_series(1, 200) g"
        )
    return "db_report_probe"


def test_top_queries_rank_this_databases_statements_by_total_time(db):
    assert db_report.statements_missing() is None
    with connection.cursor() as cursor:
        for _ in range(3):
            cursor.execute("SELECT count(*) AS db_report_probe_count FROM auth_user")

    data = json.loads(_run("--json", "--limit", "500"))

    assert data["statements_missing"] is None
    probe = [q for q in data["top_queries"] if "db_report_probe_count" in q["query"]]
    assert len(probe) == 1
    assert probe[0]["calls"] >= 3
    assert probe[0]["total_ms"] >= probe[0]["mean_ms"] > 0
    assert 0 <= probe[0]["share"] <= 1
    # The report's own statements are not among them.
    assert not [q for q in data["top_queries"] if q["query"].startswith("/* db_report */")]
    totals = [q["total_ms"] for q in data["top_queries"]]
    assert totals == sorted(totals, reverse=True)


def test_unused_and_covered_indexes_are_named_primary_keys_left_out(probe_table):
    data = db_report.report(limit=50, write_heavy=0, min_rows=0)

    unused = {ix.index: ix for ix in data.unused_indexes if ix.table == probe_table}
    assert set(unused) == {"db_report_probe_v", "db_report_probe_v_w"}  # not the primary key
    assert unused["db_report_probe_v"].write_heavy
    assert unused["db_report_probe_v"].size_bytes > 0
    covered = {c.index: c.covered_by for c in data.covered_indexes if c.table == probe_table}
    assert covered == {"db_report_probe_v": "db_report_probe_v_w"}

    text = _run("--write-heavy", "0", "--min-rows", "0")
    assert "db_report_probe.db_report_probe_v: " in text
    assert "WRITE-HEAVY" in text
    assert (
        "db_report_probe.db_report_probe_v: 16.0 kB, 0 scans; covered by db_report_probe_v_w"
        in (text)
    )


def test_without_the_extension_the_report_says_how_to_get_it(db):
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION pg_stat_statements")  # rolled back with the test

    text = _run()

    assert "pg_stat_statements is not created in this database" in text
    assert "CREATE EXTENSION pg_stat_statements" in text
    # The rest of the report still comes.
    assert "Indexes never used" in text
    assert "Tables read by sequential scans" in text
    assert json.loads(_run("--json"))["top_queries"] == []


@pytest.mark.django_db(transaction=True)
def test_sequential_scans_are_listed_until_a_reset():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE db_report_seq (id int, v int)")
        try:
            cursor.execute("INSERT INTO db_report_seq SELECT g, g FROM generate_series(1, 3000) g")
            for _ in range(4):
                cursor.execute("SELECT count(*) FROM db_report_seq WHERE v > 10")
            # Counters reach the shared statistics when the backend goes idle; force it now.
            cursor.execute("SELECT pg_stat_force_next_flush()")
            cursor.execute("SELECT 1")

            tables = {t.table: t for t in db_report.seq_scanned_tables(min_rows=1000, limit=500)}

            seq = tables["db_report_seq"]
            assert seq.seq_scan >= 4
            assert seq.seq_tup_read >= 4 * 3000
            assert seq.live_rows == 3000
            assert seq.seq_ratio == 1.0
            assert seq.rows_per_seq_scan >= 3000

            assert _run("--reset").splitlines() == [
                "reset: statement statistics",
                "reset: table and index statistics",
            ]
            cursor.execute("SELECT 1")
            tables = {t.table for t in db_report.seq_scanned_tables(min_rows=0, limit=500)}
            assert "db_report_seq" not in tables
        finally:
            cursor.execute("DROP TABLE db_report_seq")


def test_the_extension_migration_goes_on_where_the_role_may_not_create_it(db):
    create = import_module("monitoring.migrations.0001_pg_stat_statements").CREATE
    with connection.cursor() as cursor:
        # All rolled back with the test.
        cursor.execute("DROP EXTENSION pg_stat_statements")
        cursor.execute("CREATE ROLE db_report_app_role")
        cursor.execute("SET ROLE db_report_app_role")
        cursor.execute(create)  # a notice, no error
        cursor.execute("RESET ROLE")
        assert db_report.statements_missing().startswith("pg_stat_statements is not created")
        cursor.execute(create)  # a superuser creates it
    assert db_report.statements_missing() is None
