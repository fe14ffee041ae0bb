"""The Meilisearch server the tests use: ``settings.MEILISEARCH_URL``.

``scripts/test`` starts one (``scripts/meilisearch.sh``) and sets ``MEILISEARCH_REQUIRED``,
so there a missing server fails the run; elsewhere the Meilisearch tests skip cleanly.
Every test gets its own index prefix, so runs and tests never see each other's documents.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from django.conf import settings

from search_app.backends.meilisearch import MeilisearchBackend


def available() -> bool:
    try:
        response = requests.get(f"{settings.MEILISEARCH_URL.rstrip('/')}/health", timeout=1)
    except requests.RequestException:
        return False
    return response.ok


def require() -> None:
    """Skip the calling test without a server, unless the run requires one."""
    if available():
        return
    message = f"no Meilisearch server at {settings.MEILISEARCH_URL} (scripts/meilisearch.sh)"
    if os.environ.get("MEILISEARCH_REQUIRED", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def unique_prefix() -> str:
    return f"test_{uuid.uuid4().hex[:10]}"


@contextmanager
def scratch_backend(*, create: bool = True, **kwargs: Any) -> Iterator[MeilisearchBackend]:
    """A backend on its own indexes (created empty unless ``create`` is false), deleted
    afterwards, builds included."""
    require()
    kwargs.setdefault("index_prefix", unique_prefix())
    backend = MeilisearchBackend(**kwargs)
    try:
        if create:
            backend.ensure_indexes()
        yield backend
    finally:
        drop_indexes(backend.index_prefix)


def drop_indexes(prefix: str) -> None:
    backend = MeilisearchBackend(index_prefix=prefix)
    listing = backend.client.http.get("indexes?limit=1000").get("results", [])
    # The prefix is random, so everything under it is this test's (live and build indexes).
    uids = [index["uid"] for index in listing if index["uid"].startswith(f"{prefix}_")]
    tasks = [backend.client.delete_index(uid).task_uid for uid in uids]
    backend.wait_for(tasks, timeout_s=30)
