"""Implicit ALS (ml_app.als) with the real ``implicit`` library on small structured data."""

from __future__ import annotations

import numpy as np
import pytest

from ml_app.als import AlsModel, AlsParams, UnknownUser

# Small data needs a light penalty; the shipped defaults are tuned for ML-100K's density.
PARAMS = AlsParams(factors=3, regularization=0.1, alpha=5.0, iterations=20, seed=0)
GROUP_A = [f"a{i}" for i in range(6)]
GROUP_B = [f"b{i}" for i in range(6)]


def _triples() -> list[tuple[str, str, float]]:
    """Two taste groups: users of a group rated every item of it but one (a rotating hole)."""
    triples = []
    for group, items in (("A", GROUP_A), ("B", GROUP_B)):
        for u in range(6):
            for i, item in enumerate(items):
                if i != u:
                    triples.append((f"{group}{u}", item, 1.0))
    return triples


@pytest.fixture(scope="module")
def model() -> AlsModel:
    return AlsModel.train(_triples(), PARAMS)


def test_als_recommends_the_missing_item_of_the_users_own_group_first(model):
    for group, items in (("A", GROUP_A), ("B", GROUP_B)):
        for u in range(6):
            top = model.recommend(f"{group}{u}", n=1)
            assert top[0][0] == items[u]


def test_als_recommends_only_unseen_items(model):
    seen = {item for user, item, _ in _triples() if user == "A0"}
    recommended = [item for item, _ in model.recommend("A0", n=7)]
    assert not seen & set(recommended)
    assert len(recommended) == 7


def test_als_refuses_an_unknown_user_with_unknown_user(model):
    with pytest.raises(UnknownUser):
        model.recommend("nobody")


def test_als_training_is_deterministic_for_a_seed():
    first = AlsModel.train(_triples(), PARAMS)
    second = AlsModel.train(_triples(), PARAMS)
    assert np.array_equal(first.item_factors, second.item_factors)


def test_als_item_neighbours_are_the_items_of_the_same_group(model):
    neighbours = [item for item, _ in model.similar_items("a0", n=5)]
    assert "a0" not in neighbours
    assert set(neighbours) == set(GROUP_A) - {"a0"}


def test_fold_in_changes_a_users_recommendations_without_retraining_the_item_factors(model):
    before = model.item_factors.copy()
    as_a = [item for item, _ in model.recommend("A0", n=3)]
    assert set(as_a) <= set(GROUP_A) | set(GROUP_B)
    assert as_a[0] in GROUP_A
    # A0 now reads group B's items: the folded-in vector points at group B.
    folded = [item for item, _ in model.fold_in("A0", [(b, 1.0) for b in GROUP_B[:4]], n=2)]
    assert set(folded) <= set(GROUP_B[4:])
    assert np.array_equal(model.item_factors, before)
    # The stored model is untouched: A0's own recommendation is what it was.
    assert [item for item, _ in model.recommend("A0", n=3)] == as_a


def test_fold_in_serves_a_new_user_from_their_interactions(model):
    folded = [item for item, _ in model.fold_in("newcomer", [("b0", 1.0), ("b1", 1.0)], n=3)]
    assert set(folded) <= set(GROUP_B) - {"b0", "b1"}


def test_fold_in_with_only_unknown_items_is_an_unknown_user(model):
    with pytest.raises(UnknownUser):
        model.fold_in("newcomer", [("zzz", 1.0)])


def test_popular_orders_by_count_then_id_and_excludes(model):
    assert model.popular(3) == ["a0", "a1", "a2"]
    assert model.popular(2, exclude={"a0"}) == ["a1", "a2"]


def test_training_without_a_positive_weight_is_refused():
    with pytest.raises(ValueError):
        AlsModel.train([("u", "i", 0.0)], PARAMS)
