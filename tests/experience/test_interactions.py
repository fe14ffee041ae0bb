"""POST /api/v1/experience/interactions/: the real-time feedback loop."""

from __future__ import annotations

import json
import re
import statistics
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experience_app.models import ExperienceInteraction
from experience_app.services.interactions import InteractionIn, interactions_record
from features_app import partitions
from features_app import services as features_services
from features_app.models import UserEvent
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.models import Item
from tests.experience.utils import (
    HOME,
    INTERACTIONS,
    all_ids,
    assert_error,
    ids,
    interaction,
    make_item,
    post_interactions,
    sections,
)
from tests.factories import CategoryFactory, ProviderFactory

pytestmark = pytest.mark.django_db

TYPES = ["impression", "click", "dismiss", "hide", "save", "share", "read"]
DAY = timedelta(days=1)


def redis_state() -> dict[str, object]:
    """Every counter in the state database (the feed cache and its stats left out)."""
    client = inbo_redis.state()
    readers = {
        "hash": client.hgetall,
        "zset": lambda key: client.zrange(key, 0, -1, withscores=True),
        "string": client.get,
        "set": client.smembers,
        "list": lambda key: client.lrange(key, 0, -1),
    }
    return {
        key: readers[client.type(key)](key)
        for key in sorted(client.scan_iter())
        if ":experience:" not in key
    }


@pytest.fixture
def items():
    topic = CategoryFactory()
    return [make_item(hours_ago=1 + i, categories=[topic]) for i in range(len(TYPES))]


def test_each_interaction_becomes_a_stored_interaction_and_a_user_event(auth_client, items, user):
    request_id = str(uuid.uuid4())
    batch = [
        interaction(item, kind, request_id=request_id, section="for_you", position=n)
        for n, (item, kind) in enumerate(zip(items, TYPES, strict=True))
    ]
    batch[-1]["dwell_ms"] = 42_000

    response = post_interactions(auth_client, *batch)

    assert response.status_code == 200
    assert response.json() == {
        "accepted": len(TYPES),
        "duplicates": 0,
        "rejected": [],
        "counted": True,
    }
    stored = {str(i.event_id): i for i in ExperienceInteraction.objects.filter(user=user)}
    events = {str(e.event_id): e for e in UserEvent.objects.filter(user=user)}
    assert set(stored) == set(events) == {b["event_id"] for b in batch}
    for sent in batch:
        row, event = stored[sent["event_id"]], events[sent["event_id"]]
        assert (row.item_id, row.interaction_type) == (sent["item_id"], sent["type"])
        assert (event.item_id, event.event_type) == (sent["item_id"], sent["type"])
        assert (str(row.request_id), row.section, row.position) == (
            request_id,
            "for_you",
            sent["position"],
        )
        assert event.context["request_id"] == request_id
        assert event.context["section"] == "for_you"
        assert event.context["position"] == sent["position"]
        assert event.occurred_at == row.occurred_at
    assert stored[batch[-1]["event_id"]].dwell_ms == 42_000
    assert events[batch[-1]["event_id"]].context["dwell_ms"] == 42_000


def test_counters_and_affinity_are_updated(auth_client, items, user):
    clicked = items[0]
    category = clicked.categories.get()
    post_interactions(auth_client, interaction(clicked, "impression"), interaction(clicked, "save"))

    client = inbo_redis.state()
    counts = client.hgetall(keys.item_counts(clicked.id))
    assert counts == {"impression": "1", "save": "1"}
    affinity = client.hgetall(keys.user_affinity(user.id))
    assert float(affinity[f"c{category.id}"]) == 3.0
    assert float(affinity[f"p{clicked.provider_id}"]) == 3.0
    assert client.hgetall(keys.user_counts(user.id)) == {"impression": "1", "save": "1"}


def test_a_retried_batch_is_not_double_counted(auth_client, items, user):
    request_id = str(uuid.uuid4())
    batch = [
        interaction(item, kind, request_id=request_id)
        for item, kind in zip(items, TYPES, strict=True)
    ]
    first = post_interactions(auth_client, *batch).json()
    counters = redis_state()

    retried = post_interactions(auth_client, *batch).json()

    assert first["accepted"] == len(batch)
    assert retried == {"accepted": 0, "duplicates": len(batch), "rejected": [], "counted": True}
    assert redis_state() == counters
    assert ExperienceInteraction.objects.filter(user=user).count() == len(batch)
    assert UserEvent.objects.filter(user=user).count() == len(batch)


def test_a_retry_without_occurred_at_is_still_one_event(auth_client, items, user):
    sent = interaction(items[0], "click")  # the server stamps occurred_at
    post_interactions(auth_client, sent)
    counters = redis_state()

    retried = post_interactions(auth_client, sent).json()

    assert (retried["accepted"], retried["duplicates"]) == (0, 1)
    assert UserEvent.objects.filter(user=user).count() == 1
    assert redis_state() == counters


def test_the_same_event_twice_in_one_batch_is_one_event(auth_client, items, user):
    sent = interaction(items[0], "click")
    body = post_interactions(auth_client, sent, sent).json()
    assert (body["accepted"], body["duplicates"]) == (1, 1)
    assert inbo_redis.state().hget(keys.item_counts(items[0].id), "click") == "1"


def test_unknown_items_are_rejected_alone_with_their_index(auth_client, items, user):
    withdrawn = make_item()
    Item.objects.filter(pk=withdrawn.pk).update(status=Item.Status.UNAVAILABLE)
    batch = [
        interaction(items[0], "click"),
        interaction(10**12, "click"),
        interaction(items[1], "impression"),
        interaction(withdrawn, "click"),
    ]

    body = post_interactions(auth_client, *batch).json()

    assert body["accepted"] == 2
    assert body["duplicates"] == 0
    assert body["rejected"] == [
        {"index": 1, "event_id": batch[1]["event_id"], "reason": "unknown_item"},
        {"index": 3, "event_id": batch[3]["event_id"], "reason": "unknown_item"},
    ]
    assert set(UserEvent.objects.filter(user=user).values_list("item_id", flat=True)) == {
        items[0].id,
        items[1].id,
    }


def test_a_batch_of_only_unknown_items_stores_nothing(auth_client, user):
    body = post_interactions(auth_client, interaction(10**12, "click")).json()
    assert body["accepted"] == 0 and len(body["rejected"]) == 1
    assert not ExperienceInteraction.objects.exists()


def _future():
    return (timezone.now() + timedelta(hours=2)).isoformat()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"interactions": [{"event_id": "E", "item_id": 1, "type": "like"}]}, "interactions"),
        ({"interactions": [{"event_id": "not-a-uuid", "item_id": 1, "type": "click"}]}, None),
        ({"interactions": [{"item_id": 1, "type": "click"}]}, None),
        ({"interactions": [{"event_id": "E", "item_id": "x", "type": "click"}]}, None),
        ({"interactions": [{"event_id": "E", "item_id": 0, "type": "click"}]}, None),
        ({"interactions": [{"event_id": "E", "item_id": 2**70, "type": "click"}]}, None),
        (
            {"interactions": [{"event_id": "E", "item_id": 1, "type": "click", "position": -1}]},
            None,
        ),
        (
            {"interactions": [{"event_id": "E", "item_id": 1, "type": "click", "section": "x"}]},
            None,
        ),
        (
            {"interactions": [{"event_id": "E", "item_id": 1, "type": "click", "request_id": "r"}]},
            None,
        ),
        (
            {
                "interactions": [
                    {"event_id": "E", "item_id": 1, "type": "click", "occurred_at": "F"}
                ]
            },
            None,
        ),
        (
            {
                "interactions": [
                    {"event_id": "E", "item_id": 1, "type": "click", "occurred_at": "yesterday"}
                ]
            },
            None,
        ),
        ({"interactions": []}, "interactions"),
        ({"interactions": {"event_id": "E"}}, "interactions"),
        ({"interactions": "nope"}, "interactions"),
        ({}, "interactions"),
        ([], "non_field_errors"),
        (
            {"interactions": [{"event_id": "E", "item_id": 1, "type": "click"}] * 501},
            "interactions",
        ),
    ],
)
def test_invalid_batches_are_a_400(auth_client, payload, field, user):
    def fill(value):
        if value == "E":
            return str(uuid.uuid4())
        if value == "F":
            return _future()
        return value

    if isinstance(payload, dict) and isinstance(payload.get("interactions"), list):
        payload = {
            "interactions": [{k: fill(v) for k, v in i.items()} for i in payload["interactions"]]
        }

    error = assert_error(auth_client.post(INTERACTIONS, payload, format="json"), 400, "invalid")

    assert (field or "interactions") in error["details"]
    assert not ExperienceInteraction.objects.exists()
    assert not UserEvent.objects.exists()


def test_malformed_json_is_a_400(auth_client):
    response = auth_client.post(
        INTERACTIONS, data='{"interactions": [', content_type="application/json"
    )
    assert_error(response, 400, "parse_error")


def test_interactions_need_authentication(api_client, items):
    assert_error(post_interactions(api_client, interaction(items[0], "click")), 401)
    assert not ExperienceInteraction.objects.exists()


def test_the_next_home_call_drops_a_dismissed_item(auth_client, items):
    body = auth_client.get(HOME).json()
    victim = all_ids(body)[0]

    post_interactions(auth_client, interaction(victim, "dismiss"))

    after = auth_client.get(HOME).json()
    assert after["cached"] is False
    assert victim not in all_ids(after)


@pytest.fixture
def two_topics():
    """Two topics with equally many, equally fresh items from the same providers."""
    x, y = CategoryFactory(name="Space"), CategoryFactory(name="Cooking")
    providers = [ProviderFactory() for _ in range(4)]
    made = {"x": [], "y": []}
    for n in range(24):
        made["x"].append(make_item(hours_ago=1 + n, categories=[x], provider=providers[n % 4]))
        made["y"].append(make_item(hours_ago=1 + n, categories=[y], provider=providers[n % 4]))
    return {"x": x, "y": y, **made}


def _for_you(client):
    body = client.get(HOME).json()
    return sections(body)["for_you"]


def test_clicks_on_a_category_raise_its_items_in_for_you(auth_client, two_topics):
    x_ids = {i.id for i in two_topics["x"]}
    before = _for_you(auth_client)
    before_ranks = [e["position"] for e in before["items"] if e["item"]["id"] in x_ids]
    assert all(e["explanation"]["affinity"] == 0 for e in before["items"])

    clicked = two_topics["x"][-3:]  # the oldest ones: not what for_you would show anyway
    post_interactions(auth_client, *[interaction(i, "click") for i in clicked])

    after = _for_you(auth_client)
    x_entries = [e for e in after["items"] if e["item"]["id"] in x_ids]
    y_entries = [e for e in after["items"] if e["item"]["id"] not in x_ids]
    assert x_entries and all(e["explanation"]["affinity"] > 0 for e in x_entries)
    assert all(e["explanation"]["affinity"] == 0 for e in y_entries)
    after_ranks = [e["position"] for e in x_entries]
    assert statistics.mean(after_ranks) < statistics.mean(before_ranks or [len(before["items"])])
    assert ids(after)[0] in x_ids
    top_x = min(x_entries, key=lambda e: e["position"])
    top_y = min(y_entries, key=lambda e: e["position"], default=None)
    assert top_y is None or top_x["score"] > top_y["score"]


def test_dismissing_a_category_lowers_its_items(auth_client, two_topics):
    y_ids = {i.id for i in two_topics["y"]}
    post_interactions(auth_client, *[interaction(i, "dismiss") for i in two_topics["y"][:2]])

    after = _for_you(auth_client)

    for e in after["items"]:
        if e["item"]["id"] in y_ids:
            assert e["explanation"]["affinity"] < 0
    assert ids(after)[0] not in y_ids


def test_an_item_read_to_the_end_never_comes_back(auth_client, items):
    body = auth_client.get(HOME).json()
    finished, other = all_ids(body)[:2]

    post_interactions(auth_client, interaction(finished, "read"))
    post_interactions(auth_client, interaction(other, "click"))  # no longer the last read

    for _ in range(2):
        assert finished not in all_ids(auth_client.get(HOME).json())


# --- a bounded past; the request path never creates a partition (issue 9, point 1) --------

_DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|LOCK)\b", re.IGNORECASE)


def _attached() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = %s::regclass",
            [UserEvent._meta.db_table],
        )
        return {row[0] for row in cursor.fetchall()}


@pytest.fixture
def no_partition_created(monkeypatch):
    """Nothing on the request path may reach the code that creates partitions."""

    def refuse(months):
        raise AssertionError(f"a partition was about to be created for {sorted(months)}")

    monkeypatch.setattr(partitions, "ensure_months", refuse)
    partitions.forget()  # every month is looked up in the catalog, as in a fresh process
    yield
    partitions.forget()


def test_a_batch_dated_in_500_past_months_is_a_400_and_creates_no_partition(
    auth_client, items, user, no_partition_created
):
    before = _attached()
    start = datetime(2000, 1, 15, 12, tzinfo=UTC)
    batch = [
        interaction(items[n % len(items)], "click", occurred_at=(start - n * 31 * DAY).isoformat())
        for n in range(500)
    ]

    with CaptureQueriesContext(connection) as queries:
        error = assert_error(post_interactions(auth_client, *batch), 400, "invalid")

    assert len(error["details"]["interactions"]) == 500
    assert error["details"]["interactions"]["0"]["occurred_at"] == [
        "Must be within the last 30 days."
    ]
    assert _attached() == before
    assert not [q["sql"] for q in queries if _DDL.match(q["sql"])]
    assert not ExperienceInteraction.objects.exists() and not UserEvent.objects.exists()


@pytest.mark.parametrize(
    "occurred_at",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+05:00",
        "0999-05-01T00:00:00Z",
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T23:59:59Z",
        "10000-01-01T00:00:00Z",
    ],
)
def test_any_date_out_of_the_window_is_a_field_error(auth_client, items, occurred_at):
    response = post_interactions(
        auth_client, interaction(items[0], "click", occurred_at=occurred_at)
    )
    error = assert_error(response, 400, "invalid")
    assert "occurred_at" in error["details"]["interactions"]["0"]
    assert not UserEvent.objects.exists()


def test_the_past_bound_follows_the_setting(auth_client, items, user, settings):
    settings.EVENTS_CLIENT_MAX_AGE_DAYS = 3
    four_days_ago = (timezone.now() - 4 * DAY).isoformat()
    two_days_ago = (timezone.now() - 2 * DAY).isoformat()

    old = post_interactions(auth_client, interaction(items[0], "click", occurred_at=four_days_ago))
    recent = post_interactions(
        auth_client, interaction(items[1], "click", occurred_at=two_days_ago)
    )

    assert assert_error(old, 400)["details"]["interactions"]["0"]["occurred_at"] == [
        "Must be within the last 3 days."
    ]
    assert recent.json()["accepted"] == 1


def test_an_event_of_the_oldest_month_allowed_is_stored_without_creating_anything(
    auth_client, items, user, no_partition_created
):
    oldest = timezone.now() - timedelta(days=29, hours=23)
    before = _attached()

    with CaptureQueriesContext(connection) as queries:
        response = post_interactions(
            auth_client, interaction(items[0], "click", occurred_at=oldest.isoformat())
        )

    assert response.json()["accepted"] == 1
    assert _attached() == before
    assert not [q["sql"] for q in queries if _DDL.match(q["sql"])]


def test_a_month_without_partition_is_a_503_and_no_table_is_created(
    auth_client, items, user, no_partition_created, monkeypatch
):
    """A fresh deployment whose partition job never ran: refused, stored nowhere, the job
    is queued, and nothing is created on the request path."""
    monkeypatch.setattr(features_services, "_partitions_requested_at", None)
    this_month = partitions.partition_name(partitions.month_start(timezone.now()))
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {this_month}")  # rolled back with the test
    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    broker.delete("features")

    with CaptureQueriesContext(connection) as queries:
        response = post_interactions(auth_client, interaction(items[0], "click"))

    error = assert_error(response, 503, "service_unavailable")
    assert int(response["Retry-After"]) > 0
    assert "event_id" not in str(error)
    assert this_month not in _attached()
    assert not [q["sql"] for q in queries if _DDL.match(q["sql"])]
    assert not ExperienceInteraction.objects.exists() and not UserEvent.objects.exists()
    queued = [json.loads(m)["headers"]["task"] for m in broker.lrange("features", 0, -1)]
    assert queued == ["inbo.features.ensure_partitions"]
    broker.delete("features")
    broker.close()


# --- idempotency keys are per user (issue 9, point 12) -----------------------------------


def test_another_users_event_id_is_accepted_and_reveals_nothing(
    auth_client, other_client, items, user, other_user
):
    sent = interaction(items[0], "click", occurred_at=timezone.now().isoformat())
    assert post_interactions(auth_client, sent).json()["accepted"] == 1
    a_counts = inbo_redis.state().hgetall(keys.user_counts(user.id))

    theirs = post_interactions(other_client, {**sent, "item_id": items[1].id})

    assert theirs.status_code == 200
    assert theirs.json() == {"accepted": 1, "duplicates": 0, "rejected": [], "counted": True}
    stored = ExperienceInteraction.objects.filter(event_id=sent["event_id"])
    assert sorted(stored.values_list("user_id", flat=True)) == sorted([user.id, other_user.id])
    events = UserEvent.objects.filter(event_id=sent["event_id"])
    assert sorted(events.values_list("user_id", "item_id")) == sorted(
        [(user.id, items[0].id), (other_user.id, items[1].id)]
    )
    assert inbo_redis.state().hgetall(keys.user_counts(user.id)) == a_counts
    # And a retry of B's own event is B's duplicate, A's untouched.
    again = post_interactions(other_client, {**sent, "item_id": items[1].id}).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)


# --- strict UUIDs (issue 9, point 11) -------------------------------------------------------


@pytest.mark.parametrize("field", ["event_id", "request_id"])
@pytest.mark.parametrize("value", [False, True, 0, 1, 1.5, {}, [], "urn:uuid:" + "0" * 32])
def test_a_uuid_field_takes_only_a_uuid_string(auth_client, items, user, field, value):
    response = post_interactions(auth_client, {**interaction(items[0], "click"), field: value})

    error = assert_error(response, 400, "invalid")
    assert error["details"]["interactions"]["0"][field] == ["Must be a valid UUID."]
    assert not ExperienceInteraction.objects.exists() and not UserEvent.objects.exists()


@pytest.mark.parametrize(
    "form", [str, lambda u: str(u).upper(), lambda u: u.hex], ids=["hyphens", "upper", "hex"]
)
def test_a_uuid_in_a_canonical_hex_form_is_accepted(auth_client, items, user, form):
    request_id = uuid.uuid4()
    response = post_interactions(
        auth_client, interaction(items[0], "click", request_id=form(request_id))
    )
    assert response.json()["accepted"] == 1
    assert ExperienceInteraction.objects.get(user=user).request_id == request_id


class _Rollback(Exception):
    pass


def _batch(*pairs):
    now = timezone.now()
    return [
        InteractionIn(
            event_id=uuid.uuid4(), item_id=item.id, interaction_type=kind, occurred_at=now
        )
        for item, kind in pairs
    ]


def test_a_batch_in_a_transaction_that_rolls_back_counts_and_invalidates_nothing(
    auth_client, items, user
):
    assert auth_client.get(HOME).status_code == 200  # a cached feed to keep
    client = inbo_redis.state()
    before = {key: client.dump(key) for key in sorted(client.scan_iter())}
    assert keys.feed(user.id) in before

    with pytest.raises(_Rollback), transaction.atomic():
        result = interactions_record(
            user_id=user.id,
            interactions=_batch((items[0], "click"), (items[1], "dismiss")),
            now=timezone.now(),
        )
        assert (result.accepted, result.counted) == (2, False)  # waits for the commit
        raise _Rollback

    assert {key: client.dump(key) for key in sorted(client.scan_iter())} == before
    assert not ExperienceInteraction.objects.exists()
    assert not UserEvent.objects.filter(user_id=user.id).exists()


def test_a_batch_in_a_callers_transaction_is_counted_when_it_commits(auth_client, items, user):
    assert auth_client.get(HOME).status_code == 200
    client = inbo_redis.state()
    with transaction.atomic():
        result = interactions_record(
            user_id=user.id, interactions=_batch((items[0], "save")), now=timezone.now()
        )
        assert result.counted is False
        assert client.hgetall(keys.item_counts(items[0].id)) == {}
        assert client.exists(keys.feed(user.id))
    assert client.hgetall(keys.item_counts(items[0].id)) == {"save": "1"}
    assert not client.exists(keys.feed(user.id))
