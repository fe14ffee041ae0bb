"""Catalog change notifications: other apps learn that items or providers changed.

reading_app imports no other app, so apps that keep a copy of the catalog (search) register
a callback here through ``reading_app.public.subscribe_catalog_changes``. Callbacks run
synchronously inside the transaction of the change, so a listener that writes to the same
database (an outbox) commits or rolls back with it; an exception in a callback fails the
change itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from django.db import transaction

from reading_app.contracts import CatalogKind, CatalogOp

CatalogListener = Callable[[str, Sequence[int], str], None]
# ``callback(user_id, what)``: one reader's own state changed ("subscription", "save",
# "progress"); the home feed, cached per user, is built again on its next request.
ReaderListener = Callable[[int, str], None]

_listeners: list[CatalogListener] = []
_reader_listeners: list[ReaderListener] = []


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


def subscribe_reader(callback: ReaderListener) -> None:
    """Call ``callback(user_id, what)`` after a reader's subscriptions, saves or reading
    progress change (once per callback)."""
    if callback not in _reader_listeners:
        _reader_listeners.append(callback)


def unsubscribe_reader(callback: ReaderListener) -> None:
    if callback in _reader_listeners:
        _reader_listeners.remove(callback)


def notify_reader(user_id: int, what: str) -> None:
    """Tell every reader listener, once the current transaction commits (at once outside
    one): a listener never sees a change that was rolled back. A listener's failure is its
    own (logged by it); the change is already stored."""
    listeners = list(_reader_listeners)
    if not listeners:
        return

    def tell() -> None:
        for callback in listeners:
            callback(int(user_id), what)

    transaction.on_commit(tell)
