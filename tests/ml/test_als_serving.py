"""ALS in the product: confidence, training with its gate and registry version, the Redis
candidates and neighbours, fold-in, and the home feed reading them (real ``implicit``,
PostgreSQL and Redis)."""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from experience_app import public as experience
from experience_app.models import ModelVersion
from experience_app.services import reader_control
from features_app import public as features
from features_app.contracts import EventIn, EventType
from inbo import keys
from inbo import redis as inbo_redis
from ml_app.services import als_candidates, als_training
from ml_app.services.als_candidates import (
    AlsArtifact,
    collect,
    confidence_weights,
    event_confidence,
)
from tests.experience.utils import HOME, make_item
from tests.factories import CategoryFactory, UserFactory

pytestmark = pytest.mark.django_db

# Small data needs a light penalty (the shipped defaults are for a real catalog's density).
SMALL = override_settings(
    ML_ALS_TRAIN_DAYS=10,
    ML_ALS_FACTORS=4,
    ML_ALS_REGULARIZATION=0.1,
    ML_ALS_ALPHA=5.0,
    ML_ALS_ITERATIONS=20,
    ML_ALS_VALIDATION_SHARE=0.2,
    ML_ALS_GATE_MIN_USERS=4,
    ML_ALS_CANDIDATES=200,
    ML_ALS_NEIGHBOURS=5,
    ML_AUTO_PROMOTE=True,
)
ITEMS_PER_GROUP = 10
USERS_PER_GROUP = 8


@pytest.fixture(autouse=True)
def _small():
    with SMALL:
        als_candidates._loaded.update(id=None, artifact=None)
        yield


def event(user, item, kind: str, at, **context) -> EventIn:
    return EventIn(
        user_id=user.id,
        item_id=item.id,
        event_type=EventType(kind),
        occurred_at=at,
        event_id=uuid.uuid4(),
        context=context,
    )


@pytest.fixture
def world():
    """Two taste groups; each user clicked seven of their group's ten items five days ago
    and, half a day ago (after the validation cut), read one more of them."""
    now = timezone.now()
    groups = {}
    events = []
    for name in ("A", "B"):
        category = CategoryFactory(name=name)
        items = [make_item(hours_ago=24 * 6 + i, categories=[category]) for i in range(10)]
        users = [UserFactory() for _ in range(USERS_PER_GROUP)]
        for u, user in enumerate(users):
            held = [(u + k) % ITEMS_PER_GROUP for k in range(3)]
            for i, item in enumerate(items):
                if i not in held:
                    events.append(event(user, item, "click", now - timedelta(days=5, hours=i)))
            events.append(event(user, items[held[0]], "read", now - timedelta(hours=12)))
        groups[name] = {"items": items, "users": users}
    features.events_record(events)
    return {"now": now, **groups}


def _train(now, **kwargs):
    return als_training.train_als(now=now, days=10, **kwargs)


def _zset(user) -> dict[int, float]:
    key = keys.learned_candidates("als", user.id)
    return {int(i): s for i, s in inbo_redis.state().zrevrange(key, 0, -1, withscores=True)}


def test_confidence_excludes_impressions_and_rejections_and_weighs_saves_over_clicks():
    weights = confidence_weights()
    assert event_confidence("impression", {}, weights) == 0.0
    assert event_confidence("dismiss", {}, weights) == 0.0
    assert event_confidence("hide", {}, weights) == 0.0
    click = event_confidence("click", {}, weights)
    save = event_confidence("save", {}, weights)
    assert save > click > 0
    full = event_confidence("read", {}, weights)
    half = event_confidence("read", {"depth": 0.5}, weights)
    assert click < half < full
    assert event_confidence("read", {"depth": True}, weights) == full  # not a depth
    events = collect(
        [
            (1, 7, 100, "click", None, {}),
            (2, 7, 100, "save", None, {}),
            (3, 7, 200, "dismiss", None, {}),
            (4, 7, 300, "impression", None, {}),
        ],
        weights,
    )
    assert events.pairs == {(7, 100): click + save}
    assert events.seen[7] == {100, 200, 300}


def test_training_registers_a_version_and_writes_candidates_with_a_ttl(world):
    result = _train(world["now"])
    version = result.version
    assert version is not None and result.promoted
    stored = ModelVersion.objects.get(id=version.id)
    artifact = bytes(stored.artifact)
    assert stored.kind == "als" and stored.status == "active"
    assert stored.artifact_sha256 == hashlib.sha256(artifact).hexdigest()
    assert stored.trained_to == world["now"]
    assert stored.trained_from == world["now"] - timedelta(days=10)
    assert stored.params["factors"] == 4 and stored.params["confidence"] == "log"
    assert stored.metrics["users"] == 2 * USERS_PER_GROUP
    gate = stored.gate
    assert gate["passed"] and gate["baseline_name"] == "popularity"
    assert gate["baseline_version"] is None
    assert gate["candidate"] > gate["baseline"]
    assert gate["validation"]["users"] == 2 * USERS_PER_GROUP
    loaded = AlsArtifact.from_bytes(artifact)
    assert loaded.item_factors.shape == (2 * ITEMS_PER_GROUP, 4)

    state = inbo_redis.state()
    for name in ("A", "B"):
        own = {item.id for item in world[name]["items"]}
        for u, user in enumerate(world[name]["users"]):
            zset = _zset(user)
            held = {world[name]["items"][(u + k) % ITEMS_PER_GROUP].id for k in (1, 2)}
            assert not set(zset) & (own - held)  # unseen only
            best = max(zset, key=zset.__getitem__)
            assert best in held  # their own group's unseen items come first
            assert state.ttl(keys.learned_candidates("als", user.id)) > 0
    item = world["A"]["items"][0]
    neighbours = state.zrevrange(keys.item_neighbours("als", item.id), 0, -1)
    assert len(neighbours) == 5 and str(item.id) not in neighbours
    assert {int(i) for i in neighbours} <= {i.id for i in world["A"]["items"]}
    assert int(state.get(keys.learned_watermark("als_fold_in"))) > 0


def test_the_gate_blocks_a_candidate_no_better_than_the_active_version(world):
    first = _train(world["now"])
    assert first.promoted
    second = _train(world["now"])
    assert second.version is not None and not second.promoted
    gate = second.version.gate
    assert gate["baseline_name"] == first.version.label
    assert gate["baseline_version"] == first.version.id
    assert not gate["passed"] and gate["candidate"] <= gate["baseline"]
    assert experience.model_active("als").id == first.version.id


def test_too_few_validation_users_never_pass(world):
    with override_settings(ML_ALS_GATE_MIN_USERS=1000):
        result = _train(world["now"])
    assert not result.gate["passed"] and "validation users" in result.gate["reason"]
    assert not result.promoted and experience.model_active("als") is None
    assert not inbo_redis.state().exists(keys.learned_candidates("als", world["A"]["users"][0].id))


def test_the_command_prints_the_gate_and_registers_without_promoting(world, capsys):
    call_command("train_als", "--days", "10", "--no-promote")
    out = capsys.readouterr().out
    assert "gate: nDCG@10" in out and "(popularity) on 16 validation users -> passed" in out
    assert "registered als:v1" in out and "done in" in out
    assert experience.model_active("als") is None
    assert ModelVersion.objects.filter(kind="als").count() == 1


def test_fold_in_gives_a_user_with_new_events_fresh_candidates_without_retraining(world):
    _train(world["now"])
    versions = ModelVersion.objects.count()
    user = world["A"]["users"][0]
    before = _zset(user)
    assert als_candidates.als_fold_in().users == 0  # nothing new yet
    # They now read two items of the other group: B items rise in their candidates.
    now = timezone.now()
    picked = world["B"]["items"][:2]
    features.events_record([event(user, item, "save", now) for item in picked])
    result = als_candidates.als_fold_in(now=now + timedelta(seconds=1))
    assert result.users == 1 and result.written == 1
    after = _zset(user)
    assert after != before
    assert not {i.id for i in picked} & set(after)  # what they engaged with is left out
    others = {i.id for i in world["B"]["items"][2:]}
    assert sum(s for i, s in after.items() if i in others) > sum(
        s for i, s in before.items() if i in others
    )
    assert ModelVersion.objects.count() == versions
    watermark = int(inbo_redis.state().get(keys.learned_watermark("als_fold_in")))
    assert watermark == features.event_last_id(since=now - timedelta(days=1))


def test_fold_in_without_an_active_version_does_nothing(world):
    assert als_candidates.als_fold_in().skipped == "no_model"


def test_redis_down_does_not_advance_the_fold_in_watermark(world, redis_state_server):
    _train(world["now"])
    state = inbo_redis.state()
    mark = keys.learned_watermark("als_fold_in")
    before = state.get(mark)
    user = world["A"]["users"][1]
    now = timezone.now()
    features.events_record([event(user, world["B"]["items"][0], "click", now)])

    redis_state_server.pause()
    try:
        assert als_candidates.als_fold_in(now=now).skipped == "redis"
    finally:
        redis_state_server.resume()
    inbo_redis.reset_clients()
    assert inbo_redis.state().get(mark) == before
    # The lock SET the hung server answered late expires by its TTL; not waited for here.
    inbo_redis.state().delete(keys.learned_lock("als_fold_in"))
    assert als_candidates.als_fold_in(now=now + timedelta(seconds=1)).users == 1
    assert int(inbo_redis.state().get(mark)) > int(before)


def test_home_shows_als_candidates_with_their_signal_and_never_trains(
    world, auth_client, user, monkeypatch
):
    """The requesting user engaged like group A's users: their ALS set (precomputed by
    fold-in, not by the request) puts A items in the feed with an ``als`` explanation."""
    _train(world["now"])
    now = timezone.now()
    features.events_record([event(user, item, "click", now) for item in world["A"]["items"][:4]])
    assert als_candidates.als_fold_in(now=now + timedelta(seconds=1)).users == 1
    assert _zset(user)

    def no_training(*args, **kwargs):
        raise AssertionError("a request must never train")

    monkeypatch.setattr(als_training, "train_als", no_training)
    monkeypatch.setattr(als_training, "fit", no_training)
    versions = ModelVersion.objects.count()
    response = auth_client.get(HOME)
    assert response.status_code == 200
    explained = [
        entry["explanation"]
        for section in response.json()["sections"]
        for entry in section["items"]
        if "als" in entry["explanation"]
    ]
    assert explained
    assert ModelVersion.objects.count() == versions


# --- what readers asked to forget (ADR 0023) -------------------------------------------


def test_after_a_reset_training_and_fold_in_learn_nothing_from_the_forgotten_history(world):
    user, twin = world["A"]["users"][:2]
    reader_control.recommendations_reset(user_id=user.id)
    result = _train(world["now"])
    assert result.promoted
    assert not _zset(user)  # nothing left to learn from: no candidates
    assert user.id not in AlsArtifact.from_bytes(result.version.artifact).user_ids
    own = {item.id for item in world["A"]["items"]}
    twin_set = _zset(twin)  # other readers keep theirs
    assert twin_set and max(twin_set, key=twin_set.__getitem__) in own

    # They then save two B items: the fold-in learns from those alone.
    now = timezone.now()
    picked = world["B"]["items"][:2]
    features.events_record([event(user, item, "save", now) for item in picked])
    weights = confidence_weights()
    events = als_candidates.user_window_events(
        [user.id], now=now + timedelta(seconds=1), days=10, weights=weights
    )
    assert set(events.pairs) == {(user.id, item.id) for item in picked}
    assert als_candidates.als_fold_in(now=now + timedelta(seconds=1)).written == 1
    after = _zset(user)
    others = {i.id for i in world["B"]["items"][2:]}
    assert max(after, key=after.__getitem__) in others
    assert sum(s for i, s in after.items() if i in others) > sum(
        s for i, s in after.items() if i in own
    )


def test_a_removed_category_or_provider_is_left_out_of_what_als_learns(world):
    user, other = world["A"]["users"][0], world["B"]["users"][0]
    now = timezone.now()
    features.events_record([event(user, world["B"]["items"][0], "click", now - timedelta(hours=1))])
    first = world["A"]["items"][0]
    before = als_candidates.user_window_events(
        [user.id], now=now, days=10, weights=confidence_weights()
    )
    assert (user.id, first.id) in before.pairs

    reader_control.interest_forget(user_id=user.id, kind="provider", target_id=first.provider_id)
    events = als_candidates.user_window_events(
        [user.id], now=now, days=10, weights=confidence_weights()
    )
    assert set(before.pairs) - set(events.pairs) == {(user.id, first.id)}

    category_a = world["A"]["items"][0].categories.get()
    reader_control.interest_forget(user_id=user.id, kind="category", target_id=category_a.id)
    events = als_candidates.user_window_events(
        [user.id], now=now, days=10, weights=confidence_weights()
    )
    assert set(events.pairs) == {(user.id, world["B"]["items"][0].id)}  # only the B click

    result = _train(now)
    assert result.promoted
    zset = _zset(user)
    b_items = {i.id for i in world["B"]["items"][1:]}
    assert max(zset, key=zset.__getitem__) in b_items  # pulled to B, not back to A
    other_set = _zset(other)
    assert other_set and max(other_set, key=other_set.__getitem__) in b_items
    a_user = _zset(world["A"]["users"][1])  # another A reader still gets A items
    assert max(a_user, key=a_user.__getitem__) in {i.id for i in world["A"]["items"]}
