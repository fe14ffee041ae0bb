"""The degraded path computes from PostgreSQL what the counters hold in Redis."""

from __future__ import annotations

from dataclasses import astuple

import pytest
from django.test import override_settings

from features_app import public as features
from tests.factories import CategoryFactory, ItemFactory, UserFactory
from tests.features.utils import HOUR, T0, event, impressions

pytestmark = pytest.mark.django_db

NOW = T0 + 30 * HOUR


@pytest.fixture
def world():
    """Two users acting on four items over a day, in three batches; no lists (prior CTR)."""
    cat_a, cat_b, cat_c = CategoryFactory(), CategoryFactory(), CategoryFactory()
    u1, u2 = UserFactory(), UserFactory()
    a = ItemFactory(categories=[cat_a, cat_b])
    b = ItemFactory(categories=[cat_b])
    c = ItemFactory(categories=[cat_c])
    d = ItemFactory()
    batches = [
        [
            *impressions(u1, [a, b, c], T0),
            event(u1, a, "click", T0 + 1 * HOUR),
            event(u1, a, "read", T0 + 2 * HOUR),
            *impressions(u2, [a, c], T0 + 1 * HOUR),
            event(u2, c, "click", T0 + 2 * HOUR),
        ],
        [
            event(u1, b, "impression", T0 + 3 * HOUR),
            event(u1, c, "dismiss", T0 + 4 * HOUR),
            event(u1, d, "impression", T0 + 5 * HOUR),
            event(u1, d, "save", T0 + 6 * HOUR),
            event(u1, a, "impression", T0 + 10 * HOUR),  # seen again after the click
        ],
        [
            event(u1, b, "share", T0 + 12 * HOUR),
            event(u2, c, "click", T0 + 20 * HOUR),
            event(u2, b, "hide", T0 + 21 * HOUR),
            event(u2, b, "impression", T0 + 22 * HOUR),
            event(u2, a, "click", T0 + 23 * HOUR),
            event(u2, a, "click", T0 + 24 * HOUR),
        ],
    ]
    for batch in batches:
        assert features.events_ingest(batch).counted
    return {"users": [u1, u2], "items": [a, b, c, d]}


def _assert_same_signals(live, degraded):
    assert live.keys() == degraded.keys()
    for item_id, s in live.items():
        f = degraded[item_id]
        assert (s.impressions, s.clicks, s.reads, s.saves, s.dismisses) == (
            f.impressions,
            f.clicks,
            f.reads,
            f.saves,
            f.dismisses,
        ), item_id
        assert s.first_seen == f.first_seen, item_id
        assert s.decayed_clicks == pytest.approx(f.decayed_clicks, rel=1e-9), item_id
        assert s.decayed_expected == pytest.approx(f.decayed_expected, rel=1e-9), item_id
        assert s.lift == pytest.approx(f.lift, rel=1e-9), item_id


def test_item_signals_from_log_match_the_counters(world):
    ids = [item.id for item in world["items"]]
    for now in (T0 + 24 * HOUR, NOW):
        live = features.item_signals(ids, now=now)
        _assert_same_signals(live, features.item_signals_from_log(ids, now=now))
    assert live[ids[0]].clicks == 3 and live[ids[0]].decayed_clicks > 0  # not vacuous


def test_user_profile_from_log_matches_the_counters(world):
    for user in world["users"]:
        live = features.user_profile(user.id)
        assert features.user_profile_from_log(user.id, now=NOW) == live, user.id
    u1 = features.user_profile(world["users"][0].id)
    a, _, c, _ = world["items"]
    assert u1.seen == {a.id: 1, c.id: 1}  # not vacuous


def test_trending_from_log_has_the_same_order(world):
    live = features.trending(now=NOW, limit=10)
    degraded = features.trending_from_log(now=NOW, limit=10)
    assert [i for i, _ in degraded] == [i for i, _ in live]
    assert [m for _, m in degraded] == pytest.approx([m for _, m in live], rel=1e-9)
    assert len(live) == 2  # a and c were clicked


def test_the_degraded_path_answers_with_redis_down(world, redis_state_server):
    redis_state_server.stop()
    a = world["items"][0]
    assert features.item_signals_from_log([a.id], now=NOW)[a.id].clicks == 3
    assert features.user_profile_from_log(world["users"][0].id, now=NOW).event_counts
    assert features.trending_from_log(now=NOW, limit=3)


def test_from_log_ignores_events_after_now():
    user, item = UserFactory(), ItemFactory()
    features.events_ingest([event(user, item, "impression"), event(user, item, "click", NOW)])
    signals = features.item_signals_from_log([item.id], now=T0)[item.id]
    assert (signals.impressions, signals.clicks) == (1, 0)
    assert features.user_profile_from_log(user.id, now=T0).seen == {item.id: 1}
    assert features.trending_from_log(now=T0, limit=5) == []


def test_from_log_of_unknown_items_is_zero():
    item = ItemFactory()
    signals = features.item_signals_from_log([item.id], now=NOW)
    assert astuple(signals[item.id]) == astuple(features.ItemSignals(item_id=item.id))


def test_item_signals_from_log_survive_a_year_old_event():
    """2 ** -1460 is below the smallest double: it must read as 0, not fail.

    (Fine today because Django binds parameters client-side, so PostgreSQL computes in
    ``numeric``; a float8 ``power`` would raise "value out of range: underflow".)"""
    user, item = UserFactory(), ItemFactory()
    year_ago = T0 - 365 * 24 * HOUR
    features.events_ingest(
        [event(user, item, "impression", year_ago), event(user, item, "click", year_ago)]
    )
    signals = features.item_signals_from_log([item.id], now=T0)[item.id]
    assert (signals.impressions, signals.clicks, signals.first_seen) == (1, 1, year_ago)
    assert signals.decayed_clicks == pytest.approx(0.0)
    live = features.item_signals([item.id], now=T0)[item.id]
    assert live.decayed_clicks == pytest.approx(0.0)


@override_settings(FEATURES_CLICK_HALF_LIFE_HOURS=0.01)  # 36 s: 48 hours are 4800 half-lives
def test_trending_from_log_survives_a_short_half_life():
    user, fresh, old = UserFactory(), ItemFactory(), ItemFactory()
    features.events_ingest(
        [event(user, fresh, "click", NOW), event(user, old, "click", NOW - 47 * HOUR)]
    )
    ranked = features.trending_from_log(now=NOW, limit=5)
    assert ranked[0] == (fresh.id, pytest.approx(1.0))


def test_impression_and_click_at_the_same_instant_agree():
    """The counters apply impressions before other events of the same instant; so does the
    rebuild from the log, whatever order the batch came in."""
    user, item = UserFactory(), ItemFactory()
    features.events_ingest([event(user, item, "click"), event(user, item, "impression")])
    assert features.user_profile(user.id).seen == {}
    assert features.user_profile_from_log(user.id, now=NOW).seen == {}
