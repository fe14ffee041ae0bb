"""Search backends: PostgreSQL full-text (default) and Meilisearch, by name.

``get_backend(name)`` imports ``search_app.backends.<name>`` lazily (the Meilisearch client
is only loaded where it is configured) and returns one shared instance per process of the
module's :class:`SearchBackend` subclass whose ``name`` is ``name``, constructed without
arguments (a backend reads its own settings). A known backend whose module cannot be
imported raises :class:`BackendUnavailable`, so the search service falls back to PostgreSQL.
"""

from __future__ import annotations

import importlib
import logging
import threading

from django.core.exceptions import ImproperlyConfigured

from search_app.backends.base import BackendUnavailable, SearchBackend

logger = logging.getLogger(__name__)

POSTGRES = "postgres"
BACKENDS = (POSTGRES, "meilisearch")

_instances: dict[str, SearchBackend] = {}
_lock = threading.Lock()


def _backend_class(name: str) -> type[SearchBackend]:
    try:
        module = importlib.import_module(f"search_app.backends.{name}")
    except ImportError as exc:
        logger.error("search.backend_import_failed backend=%s error=%s", name, exc)
        raise BackendUnavailable(f"search backend {name!r} cannot be loaded: {exc}") from exc
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, SearchBackend)
            and value is not SearchBackend
            and value.name == name
        ):
            return value
    raise ImproperlyConfigured(f"search_app.backends.{name} defines no backend named {name!r}")


def get_backend(name: str) -> SearchBackend:
    """The shared backend instance called ``name`` (``postgres`` or ``meilisearch``)."""
    if name not in BACKENDS:
        raise ImproperlyConfigured(f"Unknown SEARCH_BACKEND {name!r}; one of {BACKENDS}")
    backend = _instances.get(name)
    if backend is None:
        with _lock:
            backend = _instances.get(name)
            if backend is None:
                backend = _instances[name] = _backend_class(name)()
    return backend


def reset_backends() -> None:
    """Forget the shared instances (tests that change a backend's settings)."""
    with _lock:
        _instances.clear()


__all__ = [
    "BACKENDS",
    "POSTGRES",
    "BackendUnavailable",
    "SearchBackend",
    "get_backend",
    "reset_backends",
]
