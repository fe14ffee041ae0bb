"""How processes hold PostgreSQL connections, and what PgBouncer in transaction mode needs
(inbo/settings.py "Database"; docs/SCALING.md "Connections")."""

from __future__ import annotations

import runpy
import shutil
import socket
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection

SETTINGS = Path(__file__).resolve().parents[2] / "inbo" / "settings.py"


def _database(monkeypatch, **env: str) -> dict:
    """DATABASES["default"] as inbo/settings.py builds it from ``env``."""
    for name in ("DATABASE_CONNECTIONS", "DATABASE_POOL", "DATABASE_PGBOUNCER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))["DATABASES"]["default"]


def test_connection_modes(monkeypatch):
    persistent = _database(monkeypatch)
    assert persistent["CONN_MAX_AGE"] == 60
    assert "pool" not in persistent["OPTIONS"]
    assert "-c statement_timeout=30000" in persistent["OPTIONS"]["options"]

    pool = _database(monkeypatch, DATABASE_CONNECTIONS="pool", DATABASE_POOL_MAX="4")
    assert pool["CONN_MAX_AGE"] == 0  # Django refuses a pool with persistent connections
    assert pool["OPTIONS"]["pool"] == {"min_size": 1, "max_size": 4, "timeout": 10.0}
    # The older switch still selects the pool.
    assert "pool" in _database(monkeypatch, DATABASE_POOL="true")["OPTIONS"]

    assert _database(monkeypatch, DATABASE_CONNECTIONS="none")["CONN_MAX_AGE"] == 0
    with pytest.raises(ImproperlyConfigured, match="DATABASE_CONNECTIONS"):
        _database(monkeypatch, DATABASE_CONNECTIONS="pooled")


def test_pgbouncer_mode_leaves_nothing_on_a_server_connection(monkeypatch):
    db = _database(monkeypatch, DATABASE_PGBOUNCER="true")
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert db["OPTIONS"]["prepare_threshold"] is None
    assert "options" not in db["OPTIONS"]  # PgBouncer refuses startup options


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("pgbouncer") is None, reason="PgBouncer is not installed")
@pytest.mark.django_db  # the test database exists (its name is in the settings)
def test_through_pgbouncer_in_transaction_mode(monkeypatch):
    """Two clients connected as the app connects in PgBouncer mode, through one PgBouncer
    (transaction pooling, bench/pgbouncer.ini, one server connection): the statement timeout
    comes from its connect_query, a local timeout (as search sets it) ends with its
    transaction, and repeated statements never rely on prepared ones."""
    import psycopg

    from bench.stack import PgBouncer

    direct = connection.settings_dict
    url = f"postgres://{direct['USER'] or 'postgres'}@127.0.0.1:{direct['PORT'] or 5432}"
    bouncer = PgBouncer(f"{url}/{direct['NAME']}", pool_size=1, port=_free_port())
    bouncer.start()
    monkeypatch.setenv("DATABASE_URL", bouncer.url)
    app = _database(monkeypatch, DATABASE_PGBOUNCER="true")
    # What Django's backend hands psycopg for this database.
    params = {"host": app["HOST"], "port": app["PORT"], "user": app["USER"]}
    params |= {"dbname": app["NAME"], "autocommit": True, **app["OPTIONS"]}
    try:
        with psycopg.connect(**params) as first, psycopg.connect(**params) as second:
            for client in (first, second):
                assert client.execute("SHOW statement_timeout").fetchone()[0] == "30s"
                assert client.execute("SHOW jit").fetchone()[0] == "off"
            with first.transaction():
                first.execute("SELECT set_config('statement_timeout', '50', true)")
                assert first.execute("SHOW statement_timeout").fetchone()[0] == "50ms"
            # The next transactions, from either client, run on the server connection the
            # local setting was made on, and find the database's timeout again.
            for client in (second, first):
                assert client.execute("SHOW statement_timeout").fetchone()[0] == "30s"
            # psycopg's default prepares a statement run 5 times, under a name per client
            # connection; two clients on one server connection would then collide.
            for i in range(12):
                client = (first, second)[i % 2]
                assert client.execute("SELECT %s::int + 1", [i]).fetchone()[0] == i + 1
    finally:
        bouncer.stop()


def test_compose_sends_web_through_pgbouncer_and_workers_direct():
    """Web borrows server connections per transaction; worker and beat hold session-level
    advisory locks (search indexing, guardrails), so they keep their own connections."""
    import configparser

    import yaml

    root = SETTINGS.parents[1]
    services = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    web = services["web"]["environment"]
    assert "@pgbouncer:6432/" in web["DATABASE_URL"]
    assert web["DATABASE_PGBOUNCER"] == "true"
    for direct in ("worker", "beat", "setup"):
        env = services[direct].get("environment", services["web"]["environment"])
        assert "@postgres:5432/" in env["DATABASE_URL"], direct
        assert "DATABASE_PGBOUNCER" not in env, direct
    mounted = [v.split(":")[0] for v in services["pgbouncer"]["volumes"]]
    ini = configparser.ConfigParser()
    ini.read(root / mounted[0])
    assert ini["pgbouncer"]["pool_mode"] == "transaction"
    # The timeout and jit the app sets on a direct connection (inbo/settings.py defaults).
    assert "SET statement_timeout = 30000; SET jit = off" in ini["databases"]["inbo"]


@pytest.mark.django_db
def test_jobs_holding_a_session_lock_refuse_pgbouncer(settings):
    """Search indexing and the guardrail check hold a lock across transactions: behind
    PgBouncer its unlock could run on another server connection, so they refuse to start."""
    from experiments_app.services.guardrails import check_guardrails
    from search_app.services.indexing import index_pending

    settings.DATABASE_PGBOUNCER = True
    for job in (index_pending, check_guardrails):
        with pytest.raises(ImproperlyConfigured, match="direct connection"):
            job()
    settings.DATABASE_PGBOUNCER = False
    assert index_pending().skipped is False
