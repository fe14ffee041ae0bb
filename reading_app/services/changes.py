"""Catalog change notifications: other apps learn that items or providers changed.

reading_app imports no other app, so apps that keep a copy of the catalog (search) register
a callback here through ``reading_app.public.subscribe_catalog_changes``. Callbacks run
synchronously inside the transaction of the change, so a listener that writes to the same
database (an outbox) commits or rolls back with it; an exception in a callback fails the
change itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from reading_app.contracts import CatalogKind, CatalogOp

CatalogListener = Callable[[str, Sequence[int], str], None]

_listeners: list[CatalogListener] = []


def subscribe(callback: CatalogListener) -> None:
    """Call ``callback(kind, ids, op)`` after every catalog change (once per callback)."""
    if callback not in _listeners:
        _listeners.append(callback)


def unsubscribe(callback: CatalogListener) -> None:
    if callback in _listeners:
        _listeners.remove(callback)


def notify(kind: CatalogKind, ids: Iterable[int | None], op: CatalogOp) -> None:
    """Tell every listener that ``ids`` of ``kind`` were upserted or deleted."""
    unique = sorted({int(i) for i in ids if i is not None})
    if not unique:
        return
    for callback in list(_listeners):
        callback(kind.value, unique, op.value)
