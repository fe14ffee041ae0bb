"""The two-level cache (``inbo.cache_l1``) against the test Redis: levels, bounds, versioned
invalidation across processes (two instances of a namespace stand for two processes), Redis
away, and the hit/miss metric."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from inbo import keys
from inbo import redis as inbo_redis
from inbo.cache_l1 import TwoLevelCache
from monitoring.metrics import CACHE_REQUESTS


class Loader:
    """A loader that remembers what it was asked for; values are ``<key>@<generation>``."""

    def __init__(self) -> None:
        self.calls: list[list] = []
        self.generation = 1

    def __call__(self, missing: list) -> dict:
        self.calls.append(list(missing))
        return {key: f"{key}@{self.generation}" for key in missing if key != "absent"}


def _process(namespace: str = "things", **kwargs) -> TwoLevelCache:
    """One process's view of a namespace (checking the version on every lookup unless told)."""
    kwargs.setdefault("version_check_seconds", 0)
    return TwoLevelCache(namespace, maxsize=kwargs.pop("maxsize", 100), ttl=60, **kwargs)


def test_a_value_is_loaded_once_then_served_from_memory():
    things, load = _process(), Loader()
    assert things.get_many([1, 2], load) == {1: "1@1", 2: "2@1"}
    assert things.get_many([2, 1], load) == {1: "1@1", 2: "2@1"}
    assert things.get_or_set(3, lambda: "three") == "three"
    assert things.get_or_set(3, lambda: "never") == "three"
    assert load.calls == [[1, 2]]
    assert things.stats == {
        ("l1", "miss"): 3,
        ("l1", "hit"): 3,
        ("l2", "miss"): 3,
    }


def test_another_process_reads_what_one_loaded_from_redis():
    load = Loader()
    _process().get_many([1, 2], load)
    other = _process()
    assert other.get_many([1, 2, "absent"], load) == {1: "1@1", 2: "2@1"}
    assert load.calls == [[1, 2], ["absent"]]  # an absent key is not cached
    assert other.stats[("l2", "hit")] == 2


def test_an_invalidation_reaches_every_process():
    load = Loader()
    here, there = _process(), _process()
    here.get_many([1], load)
    assert there.get_many([1], load) == {1: "1@1"}  # both hold it in memory now

    load.generation = 2
    here.invalidate()
    assert here.get_many([1], load) == {1: "1@2"}
    assert there.get_many([1], load) == {1: "1@2"}  # its memory was dropped too
    assert load.calls == [[1], [1]]  # the second process read the new value from Redis


def test_a_process_checks_the_version_at_most_once_per_interval():
    load = Loader()
    here, slow = _process(), _process(version_check_seconds=3600)
    slow.get_many([1], load)
    load.generation = 2
    here.invalidate()
    # Within its interval the slow process still serves its copy (the staleness bound)...
    assert slow.get_many([1], load) == {1: "1@1"}
    slow.clear_local()  # ...and reads the version again once the interval is up.
    assert slow.get_many([1], load) == {1: "1@2"}


def test_memory_is_bounded():
    things, load = _process(maxsize=5), Loader()
    things.get_many(range(50), load)
    assert len(things) == 5
    assert len(things.get_many(range(50), Loader())) == 50  # the rest still in Redis


def test_an_emptied_cache_database_never_brings_old_values_back():
    load = Loader()
    things = _process()
    things.get_many([1], load)
    before = cache.get(keys.cache_namespace_version("things"))
    cache.clear()  # a Redis restart, a flush
    load.generation = 2
    assert things.get_many([1], load) == {1: "1@2"}
    assert cache.get(keys.cache_namespace_version("things")) not in (None, before)


def test_with_redis_away_memory_still_serves_and_misses_are_loaded():
    load = Loader()
    things = _process()
    things.get_many([1], load)
    inbo_redis.cache_breaker().open()  # every cache call now fails at once, as in an outage
    assert things.get_many([1, 2], load) == {1: "1@1", 2: "2@1"}
    assert things.get_or_set(2, lambda: "never") == "2@1"  # kept in memory meanwhile
    assert load.calls == [[1], [2]]
    things.invalidate()  # cannot reach other processes, but this one forgets
    load.generation = 2
    assert things.get_many([1], load) == {1: "1@2"}


def test_a_process_that_never_reached_redis_still_caches_in_memory():
    inbo_redis.cache_breaker().open()
    things, load = _process(), Loader()
    things.get_many([1], load)
    things.get_many([1], load)
    assert load.calls == [[1]]
    assert things.stats == {("l1", "miss"): 1, ("l1", "hit"): 1}  # Redis not even tried


def test_inside_a_transaction_the_version_is_replaced_now_and_again_on_commit(
    db, django_capture_on_commit_callbacks
):
    things = _process()
    version = keys.cache_namespace_version("things")
    things.get_many([1], Loader())
    seen = [cache.get(version)]
    with django_capture_on_commit_callbacks(execute=True) as on_commit:
        things.invalidate()
        things.invalidate()  # a second row of the same transaction
        seen.append(cache.get(version))
        assert seen[-1] != seen[0]
    assert len(on_commit) == 1  # once per transaction, however many rows changed
    seen.append(cache.get(version))
    assert seen[-1] != seen[1]  # a reader between the first bump and the commit is retired


def test_hits_and_misses_are_exported_per_level_and_namespace():
    def sample(level: str, result: str) -> float:
        labels = {"level": level, "namespace": "metered", "result": result}
        for metric in CACHE_REQUESTS.collect():
            for found in metric.samples:
                if found.name == "inbo_cache_requests_total" and found.labels == labels:
                    return found.value
        return 0.0

    before = {(lv, r): sample(lv, r) for lv in ("l1", "l2") for r in ("hit", "miss")}
    load = Loader()
    _process("metered").get_many([1, 2], load)  # l1 miss 2, l2 miss 2
    _process("metered").get_many([1, 2, 3], load)  # l1 miss 3, l2 hit 2, l2 miss 1
    grown = {key: sample(*key) - value for key, value in before.items()}
    assert grown == {
        ("l1", "hit"): 0,
        ("l1", "miss"): 5,
        ("l2", "hit"): 2,
        ("l2", "miss"): 3,
    }


def test_a_namespace_is_one_word():
    with pytest.raises(ValueError):
        TwoLevelCache("a:b", maxsize=1, ttl=1)
