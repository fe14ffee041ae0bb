"""experience_app.ranking.rank is a pure function: same inputs, same order, explained."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.test import override_settings

from experience_app.learned import FEATURES
from experience_app.ranking import Candidate, UserContext, Weights, linear_score, rank, round4
from features_app.contracts import ItemSignals, UserProfile

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
W = Weights()  # the defaults, independent of settings
SIGNALS = {"popularity", "freshness", "affinity", "provider_affinity", "subscribed", "seen"}


def cand(item_id: int, *, hours: float = 0.0, provider: int | None = 1, cats=()) -> Candidate:
    return Candidate(item_id, provider, tuple(cats), NOW - timedelta(hours=hours))


def user(**profile) -> UserContext:
    return UserContext(UserProfile(user_id=1, **profile))


def scores(ranked) -> dict[int, float]:
    return {s.item_id: s.score for s in ranked}


def test_every_score_is_the_weighted_sum_of_its_explained_signals():
    ranked = rank(
        [cand(1, hours=5, cats=(7,)), cand(2, hours=30, provider=2)],
        UserContext(
            UserProfile(user_id=1, category_affinity={7: 3.0}, provider_affinity={2: 1.0}),
            subscribed_provider_ids=frozenset({2}),
        ),
        {1: ItemSignals(1, decayed_clicks=4.0, decayed_expected=1.0)},
        now=NOW,
        weights=W,
    )
    for s in ranked:
        assert SIGNALS <= set(s.signals) <= set(FEATURES)
        assert "als" not in s.signals and "similarity" not in s.signals  # none given
        v = s.signals
        expected = (
            W.popularity * v["popularity"]
            + W.freshness * v["freshness"]
            + W.affinity * v["affinity"]
            + W.provider_affinity * v["provider_affinity"]
            + W.subscribed * v["subscribed"]
            - W.seen * v["seen"]
        )
        assert s.score == pytest.approx(expected, abs=1e-3)


def test_a_learned_similarity_is_weighed_and_an_als_score_is_only_a_feature():
    candidates = [cand(1), cand(2), cand(3)]
    ranked = rank(
        candidates,
        user(),
        {},
        now=NOW,
        weights=W,
        learned={2: {"similarity": 0.8, "als": 0.3}, 3: {"als": 5.0}},
    )
    by_id = {s.item_id: s for s in ranked}
    assert by_id[2].signals["similarity"] == 0.8 and by_id[2].signals["als"] == 0.3
    assert "similarity" not in by_id[1].signals and "als" not in by_id[1].signals
    assert by_id[2].score == pytest.approx(by_id[1].score + W.similarity * 0.8, abs=1e-3)
    assert by_id[3].score == pytest.approx(by_id[1].score, abs=1e-3)


def test_lift_raises_the_score_and_an_unseen_item_is_neutral():
    ranked = rank(
        [cand(1), cand(2), cand(3)],
        user(),
        {
            1: ItemSignals(1, decayed_clicks=9.0, decayed_expected=1.0),  # 5x the expected
            3: ItemSignals(3, decayed_clicks=0.0, decayed_expected=4.0),  # shown, not clicked
        },
        now=NOW,
        weights=W,
    )
    assert [s.item_id for s in ranked] == [1, 2, 3]
    by_id = {s.item_id: s for s in ranked}
    assert by_id[1].signals["popularity"] == pytest.approx(math.log(5.0), abs=1e-4)
    assert by_id[2].signals["popularity"] == 0.0
    assert by_id[3].signals["popularity"] == pytest.approx(math.log(0.2), abs=1e-4)


def test_freshness_halves_every_half_life():
    w = Weights(freshness_half_life_hours=10.0)
    ranked = rank(
        [cand(1, hours=0), cand(2, hours=10), cand(3, hours=20), cand(4, hours=-3)],
        user(),
        {},
        now=NOW,
        weights=w,
    )
    fresh = {s.item_id: s.signals["freshness"] for s in ranked}
    assert fresh[1] == 1.0
    assert fresh[2] == pytest.approx(0.5, abs=1e-4)
    assert fresh[3] == pytest.approx(0.25, abs=1e-4)
    assert fresh[4] == 1.0  # published "in the future" (clock skew) is just new
    assert [s.item_id for s in ranked][-2:] == [2, 3]


def test_subscription_boosts_by_its_weight():
    ranked = rank(
        [cand(1, provider=1), cand(2, provider=2)],
        UserContext(UserProfile(user_id=1), subscribed_provider_ids=frozenset({2})),
        {},
        now=NOW,
        weights=W,
    )
    assert ranked[0].item_id == 2
    assert ranked[0].signals["subscribed"] == 1.0
    assert ranked[1].signals["subscribed"] == 0.0
    assert ranked[0].score - ranked[1].score == pytest.approx(W.subscribed)


def test_an_item_seen_without_a_click_is_penalised():
    ranked = rank([cand(1), cand(2)], user(seen={1: 2}), {}, now=NOW, weights=W)
    assert [s.item_id for s in ranked] == [2, 1]
    assert ranked[1].signals["seen"] == 1.0
    assert ranked[0].score - ranked[1].score == pytest.approx(W.seen)


def test_learned_category_and_provider_affinity_raise_and_lower():
    ranked = rank(
        [cand(1, cats=(10,)), cand(2, cats=(20,)), cand(3, cats=(30,), provider=9)],
        user(category_affinity={10: 4.0, 20: -2.0}, provider_affinity={9: 3.0}),
        {},
        now=NOW,
        weights=W,
    )
    by_id = {s.item_id: s.signals for s in ranked}
    assert by_id[1]["affinity"] > 0 > by_id[2]["affinity"]
    assert by_id[3]["affinity"] == 0.0
    assert by_id[3]["provider_affinity"] > 0
    assert [s.item_id for s in ranked] == [1, 3, 2]
    assert all(-1.0 <= v["affinity"] <= 1.0 for v in by_id.values())


def test_interests_lead_a_cold_user_to_their_categories():
    candidates = [cand(i, cats=(i % 3,)) for i in range(1, 31)]
    cold = UserContext(UserProfile(user_id=1), interest_category_ids=frozenset({2}))
    ranked = rank(candidates, cold, {}, now=NOW, weights=W)
    top = [s.item_id for s in ranked[:10]]
    assert all(i % 3 == 2 for i in top)
    assert all(s.signals["affinity"] > 0 for s in ranked[:10])
    assert all(s.signals["affinity"] == 0 for s in ranked[10:])


def test_ties_break_the_same_way_whatever_the_input_order():
    candidates = [cand(i) for i in range(1, 60)]
    expected = [s.item_id for s in rank(candidates, user(), {}, now=NOW, weights=W)]
    rng = random.Random(7)
    for _ in range(5):
        shuffled = candidates[:]
        rng.shuffle(shuffled)
        assert [s.item_id for s in rank(shuffled, user(), {}, now=NOW, weights=W)] == expected
    # Not simply the id order either: the tie-break carries no information.
    assert expected != sorted(expected) and expected != sorted(expected, reverse=True)


def test_rank_of_nothing_is_empty():
    assert rank([], user(), {}, now=NOW, weights=W) == []


@override_settings(EXPERIENCE_WEIGHT_SUBSCRIBED=5.0, EXPERIENCE_FRESHNESS_HALF_LIFE_HOURS=2.0)
def test_weights_default_to_settings():
    w = Weights.from_settings()
    assert w.subscribed == 5.0 and w.freshness_half_life_hours == 2.0
    ranked = rank(
        [cand(1, hours=2, provider=2)],
        UserContext(UserProfile(user_id=1), subscribed_provider_ids=frozenset({2})),
        {},
        now=NOW,
    )
    assert ranked[0].signals["freshness"] == pytest.approx(0.5, abs=1e-4)
    assert ranked[0].score == pytest.approx(5.0 + w.freshness * 0.5, abs=1e-3)


def test_signals_are_rounded_to_the_very_doubles_python_rounds_them_to():
    rng = random.Random(11)
    halves = [(2 * k + 1) / 20000 for k in range(-3000, 3000)]  # x.xxxx5: nearest a tie
    values = [
        *halves,
        *(math.nextafter(h, math.inf) for h in halves),
        *(math.nextafter(h, -math.inf) for h in halves),
        *(k / 32 for k in range(-100, 100)),  # exact ties, rounded half to even
        *(rng.uniform(-5, 5) for _ in range(20000)),
        *(math.log1p(rng.expovariate(0.01)) for _ in range(5000)),
        *(rng.uniform(-1, 1) * 10.0 ** rng.randint(-12, 14) for _ in range(5000)),
        0.0,
        -0.0,
        1e300,
        -1e300,
        math.inf,
        -math.inf,
    ]
    values = values[: len(values) - len(values) % 7]  # as a matrix, as rank rounds them
    rounded = round4(np.array(values).reshape(-1, 7)).reshape(-1).tolist()
    for value, got in zip(values, rounded, strict=True):
        expected = round(value, 4)
        assert got == expected and math.copysign(1, got) == math.copysign(1, expected), value
    assert math.isnan(round4(np.array([math.nan]))[0])


def test_a_learned_value_of_a_weighed_signal_is_scored_in_its_place():
    ranked = rank(
        [cand(1), cand(2)],
        user(),
        {},
        now=NOW,
        weights=W,
        learned={1: {"popularity": 2.123456, "similarity": 0.5}, 2: {"similarity": 0.25}},
    )
    by_id = {s.item_id: s for s in ranked}
    assert by_id[1].signals["popularity"] == 2.1235
    names = list(by_id[1].signals)
    assert names[0] == "popularity" and names[-1] == "similarity"  # replaced in its place
    for s in ranked:
        assert s.score == pytest.approx(linear_score(s.signals, W), abs=1e-3)
