"""Shared fixtures. Settings: ``tests/settings.py`` (real PostgreSQL and Redis)."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from inbo.cache_l1 import clear_all_local
from tests.factories import UserFactory


@pytest.fixture(scope="session", autouse=True)
def _redis_databases_are_the_tests_own():
    """Stop the run before the first flush if a test database holds someone else's keys;
    mark the databases as the suite's at the start (a run killed half-way leaves them
    marked where no test flushed the marker away) and again at the end
    (``tests/redis_guard.py``)."""
    from tests import redis_guard

    message = redis_guard.check_databases()
    if message:
        pytest.exit(message, returncode=3)
    redis_guard.mark_databases()
    yield
    redis_guard.mark_databases()


@pytest.fixture(autouse=True)
def _clean_redis(request, _redis_databases_are_the_tests_own):
    """Every test starts with empty cache and state databases (checked to be the tests' own
    before the first flush)."""
    from django.core.cache import cache

    from inbo import redis as inbo_redis

    inbo_redis.reset_clients()
    clear_all_local()  # the two-level caches' memory: a test never sees another's values
    try:
        inbo_redis.state().flushdb()
        cache.clear()
    except Exception:  # noqa: BLE001 - a test that stops Redis on purpose cleans up itself
        pass
    yield


@pytest.fixture(autouse=True)
def _experiments_start_empty(settings):
    """Each test starts on an empty database: the experiments provider (registered by
    experiments_app's ``ready``) knows no experiment and no bandit, without a query, as a
    warm process would; saving an experiment, a variant or a bandit makes it read them
    again (``experiments_app.serving.definitions_changed``).

    What it knows does not expire during the test (in this process; a Celery worker keeps
    the setting): with the 10 s default, a test that took longer than that on a loaded
    machine read the experiments again half-way, and its query counts changed with the
    machine's speed (``test_home_runs_a_constant_number_of_queries_whatever_the_page_size``
    failed so in long runs)."""
    from experiments_app import serving

    settings.EXPERIMENTS_CACHE_SECONDS = 24 * 3600.0
    serving.reset_cache(known_empty=True)
    yield
    serving.reset_cache()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def auth_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def other_client(other_user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=other_user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def redis_server(tmp_path_factory):
    """A private ``redis-server`` on a free port, killed at teardown whatever the test did.

    For tests that stop, kill or restart Redis: ``.url(db)``, ``.port``, ``.stop()``,
    ``.start()``, ``.kill()``, ``.client(db)`` — see ``tests/redis_server.py``.
    """
    from tests.redis_server import running_redis_server

    with running_redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_state_server(redis_server):
    """``redis_server``, with ``settings.REDIS_STATE_URL`` pointed at its database 0.

    The application's state client follows it for the test and is reset afterwards.
    """
    from tests.redis_server import point_state_at

    with point_state_at(redis_server.url(0)):
        yield redis_server


# Services whose ``on_commit`` effects (Redis counting, cache invalidation) tests observe.
_COMMIT_EFFECTS_OF = (
    "experience_app.services.interactions",
    "experience_app.services.interests",
    "reading_app.services.changes",  # a reader's own changes: the home feed forgets its cache
)


@pytest.fixture(autouse=True)
def _interaction_effects_run_at_their_commit(monkeypatch):
    """In a test wrapped in the test case's transaction, run the ``on_commit`` effects of
    the services above when their own transaction ends, as the commit of a request would.
    Only theirs: others (partition memory) must not outlive the test's rollback. A change
    inside a caller's transaction still waits for that commit."""
    from django.db import transaction
    from django.db.transaction import Atomic

    exit_ = Atomic.__exit__

    def __exit__(self, exc_type, exc_value, traceback):
        connection = transaction.get_connection(self.using)
        outermost = not self._from_testcase and all(
            block._from_testcase for block in connection.atomic_blocks[:-1]
        )
        result = exit_(self, exc_type, exc_value, traceback)
        ok = exc_type is None and not connection.needs_rollback
        if outermost and ok and connection.in_atomic_block:
            remaining = set(connection.savepoint_ids)
            due = [
                hook
                for hook in connection.run_on_commit
                if not hook[0] <= remaining
                and getattr(hook[1], "__module__", "") in _COMMIT_EFFECTS_OF
            ]
            connection.run_on_commit = [h for h in connection.run_on_commit if h not in due]
            for _, func, _robust in due:
                func()
        return result

    monkeypatch.setattr(Atomic, "__exit__", __exit__)
