"""Fixtures of the search tests.

``search_backend`` is the backend the contract suite (``test_contract.py``) runs against,
with an empty index: PostgreSQL always; Meilisearch when a server answers at
``settings.MEILISEARCH_URL`` (skipped otherwise). Backends must make ``upsert`` and
``delete`` visible to ``search`` when they return.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import pytest
import requests
from django.conf import settings

from search_app.backends import reset_backends
from search_app.backends.base import SearchBackend
from search_app.backends.postgres import PostgresBackend


def meilisearch_up() -> bool:
    try:
        response = requests.get(f"{settings.MEILISEARCH_URL.rstrip('/')}/health", timeout=0.5)
    except requests.RequestException:
        return False
    return response.ok


@pytest.fixture(params=["postgres", "meilisearch"])
def search_backend(request, db) -> Iterator[SearchBackend]:
    if request.param == "postgres":
        backend = PostgresBackend()
        backend.rebuild(lambda doc_type: [])  # an empty index (rolled back with the test)
        yield backend
        return
    if not meilisearch_up():
        # Skips, or fails where the run requires the server (scripts/test sets it).
        importlib.import_module("tests.search.meilisearch_server").require()
    try:
        server = importlib.import_module("tests.search.meilisearch_server")
    except ImportError as exc:
        pytest.skip(f"Meilisearch backend not available: {exc}")
    with server.scratch_backend() as backend:  # its own indexes, deleted afterwards
        yield backend


@pytest.fixture(autouse=True)
def _fresh_backends():
    """Backends are shared per process; tests that swap settings get new ones."""
    reset_backends()
    yield
    reset_backends()


@pytest.fixture(autouse=True)
def _breakers_of_this_test_are_forgotten():
    """Backends a test builds against a dead or silent engine leave open breakers behind,
    alive until the garbage collector finds them (a kept traceback refers to them): they
    would show in the readiness of a later test. Retire every breaker made during the test."""
    from inbo import breakers

    before = set(breakers._live)
    yield
    for breaker in set(breakers._live) - before:
        breaker.retired = True
