"""Every served page is logged with the signals its items were ranked on."""

from __future__ import annotations

import json
import uuid

import pytest
from django.utils import timezone

from experience_app.models import ServedFeed
from experience_app.tasks import flush_served
from inbo import keys
from inbo import redis as inbo_redis
from tests.experience.utils import HOME, all_ids, make_item, section_url, sections
from tests.factories import CategoryFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog():
    topic = CategoryFactory()
    return [make_item(hours_ago=1 + i, categories=[topic]) for i in range(12)]


def _buffer() -> list[dict]:
    return [json.loads(r) for r in inbo_redis.state().lrange(keys.served_buffer(), 0, -1)]


def test_each_home_response_is_buffered_with_its_signals(auth_client, catalog, user):
    body = auth_client.get(HOME).json()

    [record] = _buffer()
    assert record["request_id"] == body["request_id"]
    assert record["user_id"] == user.id
    assert record["degraded"] is False
    served = [
        {
            "item_id": e["item"]["id"],
            "section": s["key"],
            "position": e["position"],
            "score": e["score"],
            "signals": e["explanation"],
        }
        for s in body["sections"]
        for e in s["items"]
    ]
    assert record["items"] == served
    assert not ServedFeed.objects.exists()  # serving never waits on this insert


def test_a_cached_response_and_a_section_page_are_logged_too(auth_client, catalog, settings):
    settings.EXPERIENCE_SECTION_PAGE_SIZE = 4
    first = auth_client.get(HOME).json()
    second = auth_client.get(HOME).json()
    cursor = sections(second)["for_you"]["next_cursor"]
    page = auth_client.get(section_url("for_you"), {"cursor": cursor}).json()

    records = _buffer()

    assert [r["request_id"] for r in records] == [
        first["request_id"],
        second["request_id"],
        page["request_id"],
    ]
    assert [i["position"] for i in records[2]["items"]] == [4, 5, 6, 7]
    assert {i["section"] for i in records[2]["items"]} == {"for_you"}


def test_flush_moves_the_buffer_to_postgresql(auth_client, other_client, catalog, user):
    mine = [auth_client.get(HOME).json() for _ in range(2)]
    theirs = other_client.get(HOME).json()

    moved = flush_served()

    assert moved == 3
    assert _buffer() == []
    rows = {str(r.request_id): r for r in ServedFeed.objects.all()}
    assert set(rows) == {b["request_id"] for b in [*mine, theirs]}
    row = rows[mine[0]["request_id"]]
    assert row.user_id == user.id
    assert row.degraded is False
    assert [i["item_id"] for i in row.items] == all_ids(mine[0])
    assert all(
        set(i["signals"]) >= {"popularity", "freshness"}
        for i in row.items
        if i["section"] != "continue_reading"
    )


def test_flush_is_idempotent(auth_client, catalog):
    auth_client.get(HOME)
    records = inbo_redis.state().lrange(keys.served_buffer(), 0, -1)
    assert flush_served() == 1
    assert flush_served() == 0
    # A crash after the insert and before the trim leaves the records in the buffer:
    # flushing them again inserts nothing twice.
    inbo_redis.state().rpush(keys.served_buffer(), *records)
    assert flush_served() == 1
    assert ServedFeed.objects.count() == 1
    assert _buffer() == []


def test_flush_moves_large_buffers_in_batches(auth_client, catalog, monkeypatch):
    from experience_app.services.feed import served_log

    monkeypatch.setattr(served_log, "FLUSH_BATCH", 2)
    for _ in range(5):
        auth_client.get(HOME)

    assert flush_served(max_batches=2) == 4
    assert len(_buffer()) == 1
    assert flush_served() == 1
    assert ServedFeed.objects.count() == 5


def test_flush_drops_records_of_deleted_users(catalog):
    from rest_framework.test import APIClient

    gone = UserFactory()
    client = APIClient()
    client.force_authenticate(gone)
    client.get(HOME)
    gone.delete()

    assert flush_served() == 1
    assert not ServedFeed.objects.exists()
    assert _buffer() == []


def test_a_second_flush_waits_for_the_first(auth_client, catalog):
    auth_client.get(HOME)
    lock = inbo_redis.state().lock(keys.served_flush_lock(), timeout=10)
    assert lock.acquire(blocking=False)
    try:
        assert flush_served() == 0
        assert len(_buffer()) == 1
    finally:
        lock.release()
    assert flush_served() == 1


def test_the_degraded_path_writes_the_served_log_directly(auth_client, catalog, redis_state_server):
    redis_state_server.stop()

    body = auth_client.get(HOME).json()

    row = ServedFeed.objects.get(request_id=body["request_id"])
    assert row.degraded is True
    assert [i["item_id"] for i in row.items] == all_ids(body)
    redis_state_server.start()
    assert flush_served() == 0


def test_a_cached_response_less_a_dismissed_item_logs_exactly_what_it_shows(
    auth_client, catalog, user
):
    from experience_app.models import ExperienceInteraction

    auth_client.get(HOME)
    dismissed = all_ids(auth_client.get(HOME).json())[0]
    # Stored without the interactions service, so the cached feed is not dropped: the hit
    # itself must take the item out of the page and of its served record.
    ExperienceInteraction.objects.create(
        user=user,
        item_id=dismissed,
        interaction_type="dismiss",
        event_id=uuid.uuid4(),
        occurred_at=timezone.now(),
    )
    body = auth_client.get(HOME).json()

    assert body["cached"] is True and dismissed not in all_ids(body)
    record = _buffer()[-1]
    assert record["request_id"] == body["request_id"]
    assert [(i["item_id"], i["section"], i["position"], i["signals"]) for i in record["items"]] == [
        (e["item"]["id"], s["key"], e["position"], e["explanation"])
        for s in body["sections"]
        for e in s["items"]
    ]
