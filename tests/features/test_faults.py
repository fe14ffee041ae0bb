"""Faults with real processes: a Redis server that goes away, a Celery worker killed mid-sync.

Zero loss means: after the fault and the recovery step, every counter equals what it would
have been had nothing failed (a control counts the same batches into a clean database).
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from features_app import pending, reconcile, snapshots, sync
from features_app import public as features
from features_app.contracts import EventIn
from features_app.models import CounterQuarantine, ItemFeature, PendingCount, UserEvent
from inbo import keys
from inbo import redis as inbo_redis
from inbo.celery import app
from reading_app.models import Item
from tests.factories import CategoryFactory, ItemFactory, ProviderFactory, UserFactory
from tests.features.utils import (
    counter_state,
    event,
    feature_store_state,
    impressions,
    mark_counters_complete,
)
from tests.redis_server import point_state_at

ROOT = Path(__file__).resolve().parents[2]
HOUR = timedelta(hours=1)


def _control(url: str, batches: list[list[EventIn]]) -> dict[str, object]:
    """The feature store had Redis been up all along: the same batches, counted in order
    into the clean database at ``url``."""
    with point_state_at(url):
        inbo_redis.state().flushdb()
        for batch in batches:
            assert features.events_count(batch)
        return feature_store_state()


def _traffic(now):
    """Batches of a few minutes of use: lists, clicks on them later, taste, dwell."""
    tech, food = CategoryFactory(), CategoryFactory()
    u1, u2, u3 = UserFactory(), UserFactory(), UserFactory()
    a, b, c = ItemFactory(categories=[tech]), ItemFactory(categories=[food]), ItemFactory()
    t = now - 2 * HOUR
    return [
        impressions(u1, [a, b, c], t, request_id="r1"),
        [event(u1, a, "click", t + HOUR / 6, request_id="r1"), event(u2, c, "impression", t)],
        [event(u1, a, "read", t + HOUR / 3, dwell_ms=90_000), event(u2, c, "dismiss", t)],
        impressions(u3, [b, c], t + HOUR / 2, request_id="r2"),
        [event(u3, b, "click", t + HOUR, request_id="r2"), event(u3, b, "save", t + HOUR)],
        [event(u1, b, "impression", t + HOUR), event(u2, a, "share", t + HOUR)],
        [event(u2, b, "click", t - HOUR), event(u1, c, "hide", t + 3 * HOUR / 2)],
        impressions(u2, [a, b], t + 2 * HOUR, request_id="r3"),
    ]


def _redis_is_back(server) -> None:
    """Start the server (empty: no persistence), and let a breaker that opened during the
    outage try it at once instead of after its reset timeout."""
    server.start()
    try:
        from inbo.breakers import allow_trials
    except ImportError:  # no breaker in this process
        return
    allow_trials()


def _ingest(batch: list[EventIn], *, counted: bool) -> None:
    result = features.events_ingest(batch)
    assert (result.created, result.counted) == (len(batch), counted)


# --- (a) Redis stops while interactions arrive -----------------------------------------


@pytest.mark.slow
@pytest.mark.django_db
def test_events_during_a_redis_outage_are_restored_with_zero_loss(redis_state_server):
    batches = _traffic(timezone.now())
    before, during, after = batches[:3], batches[3:6], batches[6:]
    for batch in before[:2]:
        _ingest(batch, counted=True)
    snapshots.snapshot_take()  # the hourly backup
    _ingest(before[2], counted=True)

    redis_state_server.stop()
    for batch in during:
        _ingest(batch, counted=False)  # stored in PostgreSQL all the same
    assert UserEvent.objects.count() == sum(len(b) for b in before + during)

    _redis_is_back(redis_state_server)  # no persistence: back empty
    assert redis_state_server.client().dbsize() == 0
    for batch in after:
        _ingest(batch, counted=True)  # ingestion resumes before anyone restores
    call_command("restore_counters", stdout=io.StringIO(), stderr=io.StringIO())
    restored = feature_store_state()

    assert restored == _control(redis_state_server.url(1), batches)


@pytest.mark.slow
@pytest.mark.django_db
def test_reconcile_and_the_pending_sweep_bring_every_family_back_after_an_outage(
    redis_state_server,
):
    """Counted before the outage: lost with Redis, recounted by reconcile. Stored during
    it: pending, counted once by the sweep. Every family ends equal to a clean count."""
    batches = _traffic(timezone.now())
    _ingest(batches[0], counted=True)
    redis_state_server.stop()
    for batch in batches[1:5]:
        _ingest(batch, counted=False)
    assert PendingCount.objects.count() == 4
    _redis_is_back(redis_state_server)
    mark_counters_complete()  # as if an operator reconciles instead of restoring
    for batch in batches[5:]:
        _ingest(batch, counted=True)

    assert reconcile.reconcile().total_drift > 0
    assert pending.sweep(min_age_seconds=0).events == sum(len(b) for b in batches[1:5])
    assert PendingCount.objects.count() == 0
    repaired = counter_state()
    with point_state_at(redis_state_server.url(1)):
        inbo_redis.state().flushdb()
        for batch in batches:
            features.events_count(batch)
        control = counter_state()
    assert repaired == control
    assert not reconcile.reconcile().redis


# --- (b) a Celery worker killed in the middle of a sync --------------------------------

ITEMS = 1000
VISIBILITY_TIMEOUT = 3
LOCK_SECONDS = 2


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _worker(name: str, tmp_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": _database_url(),  # the test database
        "REDIS_BROKER_URL": settings.REDIS_BROKER_URL,
        "REDIS_STATE_URL": settings.REDIS_STATE_URL,
        "REDIS_CACHE_URL": settings.REDIS_CACHE_URL,
        "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT),
        "FEATURES_SYNC_BATCH_SIZE": "1",  # a thousand small batches: a run to kill
        "FEATURES_SYNC_LOCK_SECONDS": str(LOCK_SECONDS),
    }
    command = [sys.executable, "-m", "celery", "-A", "inbo", "worker", "-Q", "features"]
    command += ["--pool", "solo", "--concurrency", "1", "-n", f"{name}@%h", "-l", "INFO"]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=open(tmp_path / f"{name}.log", "w"),
        stderr=subprocess.STDOUT,
    )


def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def workers():
    started: list[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=15)


def _expected(item_id: int) -> dict[str, object]:
    shown, clicked = item_id % 3 + 1, item_id % 2
    return {
        "impressions": shown,
        "clicks": clicked,
        "impressions_1d": 0,
        "impressions_7d": shown,
        "impressions_28d": shown,
        "clicks_7d": clicked,
        "ctr": pytest.approx((clicked + 1) / (shown + 25)),
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_sync_killed_mid_run_is_delivered_again_and_ends_with_the_same_rows(workers, tmp_path):
    user, provider = UserFactory(), ProviderFactory()
    three_days_ago = timezone.now() - timedelta(days=3)
    items = Item.objects.bulk_create(
        Item(provider=provider, title=f"Issue {i}", body="Words.", published_at=three_days_ago)
        for i in range(ITEMS)
    )
    features.events_ingest(
        [
            event(user, item, kind, three_days_ago)
            for item in items
            for kind in ["impression"] * (item.id % 3 + 1) + ["click"] * (item.id % 2)
        ]
    )
    state = inbo_redis.state()
    assert state.scard(keys.dirty_items()) == ITEMS
    broker = app.connection_for_write().default_channel.client
    broker.flushdb()  # an empty test broker database

    app.loader.import_default_modules()
    task_id = app.tasks["inbo.features.sync"].apply_async().id
    workers.append(_worker("first", tmp_path))
    # Generous waits: they end when the condition holds, and a worker's start on a loaded
    # machine (a full suite beside other work) took more than 30 s.
    started = _wait_for(lambda: ItemFeature.objects.exists(), 120)
    assert started, (tmp_path / "first.log").read_text()

    workers[0].send_signal(signal.SIGKILL)  # mid-run: at least one batch is committed
    workers[0].wait(timeout=10)
    synced_before_the_kill = ItemFeature.objects.count()
    assert 0 < synced_before_the_kill < ITEMS
    # The message was taken and never acknowledged: it waits in the broker's unacked index.
    [(_, taken_at)] = broker.zrange("unacked_index", 0, -1, withscores=True)
    assert broker.llen("features") == 0

    # A worker that starts once the visibility timeout has passed takes the message back,
    # and by then the dead run's lock has expired.
    assert _wait_for(lambda: time.time() > taken_at + VISIBILITY_TIMEOUT + 0.2, 10)
    assert _wait_for(lambda: not state.exists(keys.features_lock("sync")), 10)
    workers.append(_worker("second", tmp_path))

    def done() -> bool:
        return (
            ItemFeature.objects.count() == ITEMS
            and not state.exists(keys.dirty_items(), keys.dirty_items_syncing())
            and broker.zcard("unacked_index") == 0
        )

    finished = _wait_for(done, 120)
    log = (tmp_path / "second.log").read_text()
    assert finished, log
    assert re.search(rf"Task inbo\.features\.sync\[{task_id}\] received", log), log
    assert re.search(rf"Task inbo\.features\.sync\[{task_id}\] succeeded .*: \d+", log), log
    synced_again = int(re.search(r"features\.synced items=(\d+)", log)[1])
    assert synced_again >= ITEMS - synced_before_the_kill  # the rest, and the cut batch

    rows = {
        f.item_id: {name: getattr(f, name) for name in _expected(0)}
        for f in ItemFeature.objects.all()
    }
    assert rows == {item.id: _expected(item.id) for item in items}
    assert ItemFeature.objects.count() == ITEMS  # one row per item, nothing twice
    assert not CounterQuarantine.objects.exists()
    assert sync.sync_features().synced == 0  # nothing was left behind


@pytest.mark.slow
@pytest.mark.django_db
def test_a_batch_redis_refused_is_pending_and_a_sweep_is_queued_for_it(
    redis_state_server, monkeypatch
):
    """``counted: false`` is the truth: the batch is pending (durably) and a sweep is on its
    way (sent from a background thread: the broker may be the Redis that just failed)."""
    monkeypatch.setattr(pending, "_requested_at", None)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("features")
    batch = _traffic(timezone.now())[0]
    redis_state_server.stop()
    _ingest(batch, counted=False)
    assert PendingCount.objects.count() == 1
    for _ in range(250):
        if broker.llen("features"):
            break
        time.sleep(0.02)
    queued = [json.loads(m)["headers"]["task"] for m in broker.lrange("features", 0, -1)]
    assert queued == ["inbo.features.count_pending"]
    broker.delete("features")

    _redis_is_back(redis_state_server)
    mark_counters_complete()
    assert pending.sweep(min_age_seconds=0).events == len(batch)
    assert (
        features.item_signals([batch[0].item_id], now=timezone.now())[batch[0].item_id].impressions
        == 1
    )
