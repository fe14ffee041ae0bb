"""A detached month of the event log keeps counting through its stored baseline (ADR 0026):
reconciliation, restore and the degraded path add it, so lifetime counts never drift down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from features_app import baseline, fallback, partitions, reconcile, snapshots, sync
from features_app import public as features
from features_app.contracts import Forgetting
from features_app.forgetting import compile_rules
from features_app.models import CounterBaseline, DetachedMonth, ItemFeature
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.public import item_facets
from tests.factories import ItemFactory, UserFactory
from tests.features.utils import event, feature_store_state

pytestmark = pytest.mark.django_db


def _immediate() -> None:
    """ALTER TABLE refuses a table with pending trigger events (the deferred foreign keys of
    this test's transaction): check them now. In production a detach runs on its own."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


# The families a baseline keeps; day buckets and the time-and-place counters of a detached
# month's days are windowed and simply lose those days.
_LIFETIME = set(baseline._OP)


def _state() -> dict[str, object]:
    return {
        k: v
        for k, v in feature_store_state(drop_zeros=True).items()
        if k.split(":")[2] in _LIFETIME
    }


def _features() -> dict[int, tuple]:
    return {
        f.item_id: (f.impressions, f.clicks, f.reads, f.saves, f.dismisses, f.dwell_ms)
        for f in ItemFeature.objects.all()
    }


@pytest.fixture
def two_months():
    """Events in the month before last and in last month (and today), counted and synced:
    lifetime counts, seen memory cleared in one month and not the other, affinity."""
    partitions.forget()
    this_month = partitions.month_start(timezone.now())
    older = partitions.add_months(this_month, -2)
    newer = partitions.add_months(this_month, -1)
    at_older = datetime(older.year, older.month, 10, 12, tzinfo=UTC)
    at_newer = datetime(newer.year, newer.month, 10, 12, tzinfo=UTC)
    u1, u2, a, b = UserFactory(), UserFactory(), ItemFactory(), ItemFactory()
    features.events_ingest(
        [
            event(u1, a, "impression", at_older, request_id="r1"),
            event(u1, b, "impression", at_older, request_id="r1"),
            event(u1, a, "click", at_older + timedelta(seconds=5), request_id="r1"),
            event(u2, a, "impression", at_older + timedelta(hours=1)),
        ]
    )
    features.events_ingest([event(u1, a, "read", at_older + timedelta(days=3), dwell_ms=40_000)])
    features.events_ingest(
        [
            event(u1, b, "impression", at_newer),
            event(u2, a, "impression", at_newer),
            event(u2, a, "save", at_newer + timedelta(minutes=1)),
            event(u2, b, "impression", timezone.now() - timedelta(minutes=5)),
        ]
    )
    sync.sync_features()
    yield {"older": older, "newer": newer, "users": (u1, u2), "items": (a, b)}
    partitions.forget()


def test_after_a_detach_reconcile_finds_no_drift_and_changes_nothing(two_months):
    before = reconcile.reconcile(dry_run=True)
    assert before.total_drift == 0
    state, rows = _state(), _features()

    _immediate()
    detached = partitions.detach_partitions(two_months["newer"])

    assert [old for old, _ in detached] == [partitions.partition_name(two_months["older"])]
    month = DetachedMonth.objects.get()
    assert (month.table, month.month, month.rows) == (detached[0][1], two_months["older"], 5)
    a, _ = two_months["items"]
    counted = dict(
        CounterBaseline.objects.filter(detached=month, key=keys.item_counts(a.id)).values_list(
            "field", "value"
        )
    )
    assert counted == {"impression": 2, "click": 1, "read": 1, "dwell_ms": 40_000}

    dry = reconcile.reconcile(dry_run=True)
    assert dry.total_drift == 0, (dict(dry.redis), dict(dry.item_feature))
    repaired = reconcile.reconcile()
    assert repaired.keys_repaired == 0
    assert _state() == state
    assert _features() == rows


def test_the_admin_lists_detached_months(two_months, admin_client):
    _immediate()
    partitions.detach_partitions(two_months["newer"])
    page = admin_client.get("/admin/features_app/detachedmonth/")
    assert page.status_code == 200
    assert DetachedMonth.objects.get().table in page.content.decode()


def test_detaching_twice_never_counts_a_month_twice(two_months):
    _immediate()
    partitions.detach_partitions(two_months["newer"])
    stored = CounterBaseline.objects.count()

    assert partitions.detach_partitions(two_months["newer"]) == []
    assert DetachedMonth.objects.count() == 1
    assert CounterBaseline.objects.count() == stored

    # A late event of the detached month gets a new partition; detached again, it has a
    # baseline of its own, and the lifetime counts are still exact.
    u1, _ = two_months["users"]
    a, _ = two_months["items"]
    older = two_months["older"]
    late = datetime(older.year, older.month, 20, tzinfo=UTC)
    features.events_ingest([event(u1, a, "click", late)])
    sync.sync_features()
    state = _state()
    _immediate()
    partitions.detach_partitions(two_months["newer"])
    assert DetachedMonth.objects.count() == 2
    assert reconcile.reconcile(dry_run=True).total_drift == 0
    assert _state() == state


def test_a_month_with_events_waiting_to_be_counted_is_not_detached(two_months, settings):
    u1, _ = two_months["users"]
    a, _ = two_months["items"]
    older = two_months["older"]
    client = inbo_redis.state()
    client.set(keys.features_counting_paused(), "test")  # the batch stays pending
    try:
        late = datetime(older.year, older.month, 21, tzinfo=UTC)
        features.events_ingest([event(u1, a, "click", late)])
    finally:
        client.delete(keys.features_counting_paused())
    _immediate()
    with pytest.raises(partitions.PartitionError, match="wait to be counted"):
        partitions.detach_partitions(two_months["newer"])
    assert DetachedMonth.objects.count() == 0
    assert partitions.partition_name(older) in {p.name for p in partitions.list_partitions()}


def test_restore_and_the_degraded_path_add_the_baseline(two_months):
    state = _state()
    a, b = two_months["items"]
    now = timezone.now()
    from_log = fallback.item_signals_from_log([a.id, b.id], now=now)
    _immediate()
    partitions.detach_partitions(two_months["newer"])

    # Full rebuild (no snapshot): baselines first, then the attached months.
    snapshots.restore()
    assert _state() == state

    # A snapshot taken before the detach holds the month: nothing is added twice.
    # (Taken after the detach it holds it too, through the rebuild above.)
    snapshots.snapshot_take()
    snapshots.restore()
    assert _state() == state

    after = fallback.item_signals_from_log([a.id, b.id], now=now)
    for item_id in (a.id, b.id):
        was, now_ = from_log[item_id], after[item_id]
        assert (now_.impressions, now_.clicks, now_.reads, now_.first_seen) == (
            was.impressions,
            was.clicks,
            was.reads,
            was.first_seen,
        )


def test_a_reset_after_the_detach_takes_the_users_baseline_out(two_months):
    u1, _ = two_months["users"]
    month = _detached(two_months)
    ops = list(baseline.ops(months=[month]))
    assert any(key == keys.user_counts(u1.id) for _, key, _, _ in ops)

    rules = compile_rules([Forgetting(user_id=u1.id, before=timezone.now())])
    kept = list(baseline.ops(forget=rules, months=[month]))
    assert not any(str(u1.id) == key.split(":")[3] for _, key, _, _ in kept if "user_" in key)
    assert any(key == keys.item_counts(two_months["items"][0].id) for _, key, _, _ in kept)

    # A removed provider takes only that affinity field out; the counts stay.
    a, _ = two_months["items"]
    field = f"p{item_facets([a.id])[a.id].provider_id}"
    assert any(k == keys.user_affinity(u1.id) and name == field for _, k, name, _ in ops)
    provider = int(field[1:])
    rules = compile_rules([Forgetting(user_id=u1.id, before=timezone.now(), provider_id=provider)])
    kept = list(baseline.ops(forget=rules, months=[month]))
    assert not any(k == keys.user_affinity(u1.id) and name == field for _, k, name, _ in kept)
    assert any(key == keys.user_counts(u1.id) for _, key, _, _ in kept)


def _detached(world) -> DetachedMonth:
    _immediate()
    partitions.detach_partitions(world["newer"])
    return DetachedMonth.objects.get()
