"""features_memory_report: both layouts hold the same counters, measured in a scratch database."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from features_app import memory_report, synthetic_activity
from features_app.memory_report import ITEM_THINGS, USER_THINGS, MemoryReportError
from inbo import keys

pytestmark = pytest.mark.slow  # starts its own redis-server


@pytest.fixture
def scratch(redis_server):
    """Database 3 of a private server: nothing the application uses."""
    return redis_server.url(3)


def test_synthetic_world_is_deterministic_and_covers_the_catalog():
    one = synthetic_activity.synthetic_world(items=300, users=40, seed=3)
    two = synthetic_activity.synthetic_world(items=300, users=40, seed=3, now=one.now)
    assert [(e.user_id, e.item_id, e.event_type) for e in one.events] == [
        (e.user_id, e.item_id, e.event_type) for e in two.events
    ]
    assert {e.user_id for e in one.events} == set(range(1, 41))
    assert len({e.item_id for e in one.events}) > 250
    assert one.events == sorted(one.events, key=lambda e: e.occurred_at)
    kinds = {str(e.event_type) for e in one.events}
    assert {"impression", "click", "read"} <= kinds


def test_both_layouts_hold_the_same_counters_and_the_scratch_db_ends_empty(scratch, redis_server):
    report = memory_report.memory_report(url=scratch, items=400, users=60, seed=5)

    compact, naive = report.compact, report.naive
    for thing in (*ITEM_THINGS, *USER_THINGS):
        if thing in compact.kinds:
            assert naive.kinds[thing].fields == compact.kinds[thing].fields, thing
    assert compact.kinds["item_counts"].keys == report.items_with_counters
    assert compact.kinds["user_counts"].keys == report.users_with_counters == 60
    assert compact.kinds["user_seen"].encodings["listpack"] > 0
    assert naive.keys > compact.keys
    assert 0 < compact.used_memory < naive.used_memory
    assert compact.per_user < naive.per_user
    assert compact.per_item < naive.per_item
    # 'all in' figures add up to the used_memory delta
    total = compact.all_in(ITEM_THINGS) + compact.all_in(USER_THINGS)
    assert total == pytest.approx(compact.used_memory, rel=0.02)
    assert {w.thing for w in report.what_if} == {"item_counts", "item_first_seen"}
    # The day buckets before (v1) and after migrate_counters (v2): the same fields. (Which
    # is smaller depends on the scale: here a day has fewer fields than a listpack holds.)
    daily = report.daily
    assert daily.identical and daily.moved == daily.fields == compact.kinds["item_daily"].fields
    assert daily.v2_encodings == {"listpack": daily.v2_keys}
    assert daily.v1_keys <= 29 and daily.v2_keys > daily.v1_keys and daily.v2_bytes > 0
    assert all(w.bytes_after > 0 and w.keys_before > 0 for w in report.what_if)
    assert redis_server.client(3).dbsize() == 0


def test_a_busy_scratch_db_is_refused_and_left_alone(scratch, redis_server):
    client = redis_server.client(3)
    client.set(keys.evaluation_lock(), "someone else")
    client.set("their:data", "1")
    with pytest.raises(MemoryReportError, match="in use"):
        memory_report.memory_report(url=scratch, items=10, users=2)
    assert client.get("their:data") == b"1"


@pytest.mark.parametrize(
    "setting", ["REDIS_STATE_URL", "REDIS_CACHE_URL", "REDIS_BROKER_URL", "CELERY_BROKER_URL"]
)
def test_the_application_databases_are_refused(setting):
    with pytest.raises(MemoryReportError, match="is the database of"):
        memory_report.check_scratch_url(getattr(settings, setting))


def test_localhost_and_127_0_0_1_are_the_same_database():
    url = settings.REDIS_STATE_URL.replace("127.0.0.1", "localhost")
    with pytest.raises(MemoryReportError):
        memory_report.check_scratch_url(url)


def test_command_prints_bytes_per_item_and_per_user(scratch, capsys):
    call_command(
        "features_memory_report", "--items", "200", "--users", "30", "--redis-url", scratch
    )
    out = capsys.readouterr().out
    assert "bytes per item (all in)" in out
    assert "bytes per user (all in)" in out
    assert "hash-max-listpack-entries" in out
    assert "what if (not shipped)" in out
    assert "before and after manage.py migrate_counters" in out and "identical to" in out


def test_command_refuses_the_state_database():
    with pytest.raises(CommandError, match="REDIS_STATE_URL"):
        call_command("features_memory_report", "--redis-url", settings.REDIS_STATE_URL)
