"""Per-process memos of what the rules read about items on every build: titles (keyword
blocks) and text embeddings (MMR). Both change rarely; a build then reads only the items it
has not seen lately. Bounded: a memo past its size starts over."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

import numpy as np

from features_app import public as features
from reading_app import public as reading

V = TypeVar("V")

# A title edited, or an item embedded again, reaches the rules within this long.
TTL_SECONDS = 300.0
MAX_ENTRIES = 50_000


class Memo(Generic[V]):
    """Values by item id, read for the misses with ``load`` (absent ids are kept as absent)."""

    def __init__(self, load: Callable[[list[int]], dict[int, V]]) -> None:
        self.load = load
        self.values: dict[int, tuple[float, V | None]] = {}
        self.lock = threading.Lock()

    def get(self, item_ids: Iterable[int]) -> dict[int, V]:
        clock = time.monotonic()
        found: dict[int, V] = {}
        missing: list[int] = []
        for item in dict.fromkeys(item_ids):
            hit = self.values.get(item)
            if hit is None or hit[0] <= clock:
                missing.append(item)
            elif hit[1] is not None:
                found[item] = hit[1]
        if missing:
            loaded = self.load(missing)
            with self.lock:
                if len(self.values) + len(missing) > MAX_ENTRIES:
                    self.values.clear()
                expires = clock + TTL_SECONDS
                for item in missing:
                    self.values[item] = (expires, loaded.get(item))
            found.update(loaded)
        return found

    def clear(self) -> None:
        with self.lock:
            self.values.clear()


def _titles(item_ids: list[int]) -> dict[int, str]:
    return {i: d.title for i, d in reading.item_search_data(item_ids, body_chars=1).items()}


def _vectors(item_ids: list[int]) -> dict[int, np.ndarray]:
    return features.item_embeddings(item_ids)


titles: Memo[str] = Memo(_titles)
vectors: Memo[np.ndarray] = Memo(_vectors)


def clear() -> None:
    titles.clear()
    vectors.clear()
