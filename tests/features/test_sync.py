"""Redis -> ItemFeature sync: windowed counts, smoothed CTR, idempotency, one run at a time."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from features_app import public as features
from features_app import sync
from features_app.models import ItemFeature
from inbo import keys
from inbo import redis as inbo_redis
from inbo.celery import app
from tests.factories import ItemFactory, UserFactory
from tests.features.utils import HOUR, T0, event

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _row(item) -> dict[str, object]:
    """An item's ItemFeature as a dict (without the sync time)."""
    feature = ItemFeature.objects.get(item=item)
    return {name: getattr(feature, name) for name in sync.FEATURE_FIELDS if name != "synced_at"}


def _rows() -> dict[int, dict[str, object]]:
    return {
        f.item_id: {name: getattr(f, name) for name in sync.FEATURE_FIELDS}
        for f in ItemFeature.objects.all()
    }


def _task(name: str):
    app.loader.import_default_modules()
    return app.tasks[name]


def _dirty() -> set[str]:
    client = inbo_redis.state()
    return client.smembers(keys.dirty_items()) | client.smembers(keys.dirty_items_syncing())


def _events_at_ages(user, item):
    """Events of one item at known ages before T0 (T0 is 12:00 UTC: T0 - 1h is 'today')."""
    ages = {
        "impression": [HOUR, HOUR, 2 * DAY, 6 * DAY, 8 * DAY, 27 * DAY, 30 * DAY],
        "click": [HOUR, 3 * DAY, 20 * DAY, 40 * DAY],
        "read": [HOUR, 6 * DAY, 7 * DAY],
        "save": [2 * DAY, 9 * DAY],
        "share": [HOUR],
        "dismiss": [10 * DAY],
        "hide": [30 * DAY],
    }
    return [event(user, item, kind, T0 - age) for kind, list_ in ages.items() for age in list_]


def test_sync_writes_lifetime_windowed_counts_and_smoothed_ctr():
    user, item = UserFactory(), ItemFactory()
    batch = _events_at_ages(user, item)
    batch.append(event(user, item, "read", T0 - HOUR, dwell_ms=90_000))
    features.events_ingest(batch)

    report = sync.sync_features(now=T0)

    assert (report.synced, report.quarantined, report.remaining) == (1, 0, 0)
    assert _row(item) == {
        "impressions": 7,
        "clicks": 4,
        "reads": 4,
        "saves": 2,
        "shares": 1,
        "dismisses": 1,
        "hides": 1,
        "dwell_ms": 90_000,
        "impressions_1d": 2,  # today only
        "impressions_7d": 4,  # ages 0..6 days
        "impressions_28d": 6,  # ages 0..27 days: not the one 30 days old
        "clicks_1d": 1,
        "clicks_7d": 2,
        "clicks_28d": 3,
        "reads_7d": 3,  # the one 7 days old is outside
        "saves_7d": 1,
        "ctr": pytest.approx((4 + 1) / (7 + 25)),
    }
    assert ItemFeature.objects.get(item=item).synced_at == T0


def test_windows_slide_with_the_sync_time():
    user, item = UserFactory(), ItemFactory()
    features.events_ingest([event(user, item, "click", T0 - HOUR)])
    sync.sync_features(now=T0 + 6 * DAY)
    assert (_row(item)["clicks_1d"], _row(item)["clicks_7d"]) == (0, 1)
    inbo_redis.state().sadd(keys.dirty_items(), item.id)
    sync.sync_features(now=T0 + 7 * DAY)
    assert (_row(item)["clicks_7d"], _row(item)["clicks_28d"], _row(item)["clicks"]) == (0, 1, 1)


def test_an_item_never_shown_has_the_prior_ctr():
    user, item = UserFactory(), ItemFactory()
    features.events_ingest([event(user, item, "save")])
    sync.sync_features(now=T0)
    assert _row(item)["ctr"] == pytest.approx(1 / 25)


def test_sync_empties_the_dirty_set():
    user = UserFactory()
    items = [ItemFactory() for _ in range(5)]
    features.events_ingest([event(user, item, "impression") for item in items])
    assert _dirty() == {str(item.id) for item in items}

    report = sync.sync_features(batch_size=2, now=T0)

    assert report.synced == 5
    assert _dirty() == set()
    assert ItemFeature.objects.count() == 5


def test_running_twice_writes_the_same_rows():
    user, a, b = UserFactory(), ItemFactory(), ItemFactory()
    features.events_ingest(
        [*_events_at_ages(user, a), event(user, b, "impression"), event(user, b, "click")]
    )
    sync.sync_features(now=T0)
    first = _rows()

    assert sync.sync_features(now=T0).synced == 0  # nothing dirty: nothing to do
    inbo_redis.state().sadd(keys.dirty_items(), a.id, b.id)
    assert sync.sync_features(now=T0).synced == 2  # everything again: absolute values

    assert _rows() == first
    assert ItemFeature.objects.count() == 2


def test_max_batches_leaves_the_rest_for_the_next_run():
    user = UserFactory()
    items = [ItemFactory() for _ in range(5)]
    features.events_ingest([event(user, item, "click") for item in items])

    report = sync.sync_features(batch_size=2, max_batches=1, now=T0)
    assert (report.synced, report.remaining) == (2, 3)

    report = sync.sync_features(batch_size=2, now=T0)
    assert (report.synced, report.remaining) == (3, 0)


def test_an_event_counted_during_its_items_sync_is_synced_too(monkeypatch):
    """The item is marked dirty again by the event, not forgotten by the end of the batch."""
    user, item = UserFactory(), ItemFactory()
    features.events_ingest([event(user, item, "click")])
    original = sync.sync_batch
    late = [event(user, item, "click", T0 + HOUR)]

    def batch_then_an_event_arrives(ids, **kwargs):
        original(ids, **kwargs)  # counters read and written
        if late:
            features.events_ingest([late.pop()])  # between the read and the batch's end

    monkeypatch.setattr(sync, "sync_batch", batch_then_an_event_arrives)
    sync.sync_features(now=T0 + HOUR)

    assert _row(item)["clicks"] == 2
    assert _dirty() == set()


def test_a_batch_that_fails_is_taken_first_by_the_next_run(monkeypatch):
    user, a, b = UserFactory(), ItemFactory(), ItemFactory()
    features.events_ingest([event(user, a, "click"), event(user, b, "click")])
    original = sync.sync_batch

    def database_goes_away(ids, **kwargs):
        raise ConnectionError("PostgreSQL went away")

    monkeypatch.setattr(sync, "sync_batch", database_goes_away)
    with pytest.raises(ConnectionError):
        sync.sync_features(batch_size=1, now=T0)
    assert ItemFeature.objects.count() == 0
    assert len(_dirty()) == 2  # one claimed by the failed batch, one still dirty

    monkeypatch.setattr(sync, "sync_batch", original)
    assert sync.sync_features(batch_size=1, now=T0).synced == 2
    assert _dirty() == set()
    assert set(ItemFeature.objects.values_list("clicks", flat=True)) == {1}


def test_a_batch_of_deleted_items_only_is_skipped():
    user, gone, kept = UserFactory(), ItemFactory(), ItemFactory()
    features.events_ingest([event(user, gone, "click"), event(user, kept, "click")])
    gone_id = gone.id
    gone.delete()

    report = sync.sync_features(batch_size=1, now=T0)

    assert (report.synced, report.skipped_missing) == (1, 1)
    assert list(ItemFeature.objects.values_list("item_id", flat=True)) == [kept.id]
    assert str(gone_id) not in _dirty()


def test_the_lock_lives_only_as_long_as_the_setting_and_is_released(settings):
    settings.FEATURES_SYNC_LOCK_SECONDS = 7
    user = UserFactory()
    features.events_ingest([event(user, ItemFactory(), "click") for _ in range(3)])
    client = inbo_redis.state()
    ttls = []
    sync.sync_features(
        batch_size=1,
        now=T0,
        progress=lambda n: ttls.append(client.pttl(keys.features_lock("sync"))),
    )
    assert len(ttls) == 3
    assert all(0 < ttl <= 7000 for ttl in ttls)
    assert client.exists(keys.features_lock("sync")) == 0


# --- the command and the task ----------------------------------------------------------


def test_command_syncs_and_reports():
    user, item = UserFactory(), ItemFactory()
    now = timezone.now()
    features.events_ingest(
        [event(user, item, "impression", now - HOUR), event(user, item, "click", now - HOUR)]
    )
    out = io.StringIO()
    call_command("sync_features", "--batch-size", "10", stdout=out, stderr=io.StringIO())
    assert "synced 1 items, quarantined 0, skipped 0 deleted, 0 left" in out.getvalue()
    assert (_row(item)["impressions"], _row(item)["clicks"], _row(item)["clicks_28d"]) == (1, 1, 1)

    out = io.StringIO()
    call_command("sync_features", stdout=out)  # again: nothing dirty, rows unchanged
    assert "synced 0 items" in out.getvalue()
    assert _row(item)["clicks"] == 1


def test_task_is_registered_by_name_and_syncs(settings):
    settings.FEATURES_SYNC_BATCH_SIZE = 1
    user = UserFactory()
    items = [ItemFactory() for _ in range(3)]
    features.events_ingest([event(user, item, "read") for item in items])
    task = _task("inbo.features.sync")
    assert task.acks_late and task.reject_on_worker_lost

    assert task.apply().get() == 3

    assert ItemFeature.objects.count() == 3
    assert inbo_redis.state().hgetall(keys.features_job_status("sync"))["synced"] == "3"


def test_a_second_run_is_refused_while_the_lock_is_held():
    user, item = UserFactory(), ItemFactory()
    features.events_ingest([event(user, item, "click")])
    other_run = inbo_redis.state().lock(keys.features_lock("sync"), timeout=60)
    assert other_run.acquire(blocking=False)

    with pytest.raises(sync.JobBusy):
        sync.sync_features(now=T0)
    with pytest.raises(CommandError, match="already running"):
        call_command("sync_features", stdout=io.StringIO())
    assert _task("inbo.features.sync").apply().get() == 0
    assert ItemFeature.objects.count() == 0
    assert _dirty() == {str(item.id)}  # nothing was taken

    other_run.release()
    assert sync.sync_features(now=T0).synced == 1
