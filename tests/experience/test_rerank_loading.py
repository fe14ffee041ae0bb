"""Serving the learned reranker at its edges (``experience_app.services.rerank``), with real
LightGBM boosters: artifacts whose features do not fit, the switch that turns the reranker
off, the reload interval, empty inputs, and a model not boosted from the linear ranking."""

from __future__ import annotations

from datetime import timedelta

import lightgbm as lgb
import numpy as np
import pytest
from django.test import override_settings
from django.utils import timezone

from experience_app.contracts import model_fallback
from experience_app.learned import FEATURES
from experience_app.models import ModelVersion
from experience_app.ranking import Scored
from experience_app.services import registry, rerank

pytestmark = pytest.mark.django_db

NOW = timezone.now()
SAVES = FEATURES.index("saves_log")


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    rerank.reset()
    yield
    rerank.reset()


def _booster(columns: int) -> bytes:
    """Lambdarank on ``columns`` random features whose grades follow column SAVES only."""
    rng = np.random.default_rng(1)
    x = rng.random((400, columns))
    y = np.minimum((x[:, min(SAVES, columns - 1)] * 4).astype(int), 3)
    data = lgb.Dataset(x, label=y, group=[20] * 20)
    params = {"objective": "lambdarank", "min_data_in_leaf": 5, "verbosity": -1, "seed": 0}
    booster = lgb.train({**params, "num_threads": 1}, data, num_boost_round=10)
    return booster.model_to_string().encode()


def version(
    features=FEATURES, *, columns: int = len(FEATURES), boost: bool = False, against=None
) -> ModelVersion:
    return registry.register(
        "reranker",
        _booster(columns),
        trained_from=NOW - timedelta(days=7),
        trained_to=NOW - timedelta(days=1),
        params={"init_score": "linear"} if boost else {},
        metrics={},
        gate={"passed": True, "metric": "ndcg@10", "baseline_version": against},
        features=features,
    )


def test_an_artifact_whose_features_do_not_fit_is_refused_with_its_reason():
    unknown = version(features=("popularity", "moon_phase"), columns=2)
    with pytest.raises(rerank.ArtifactError) as refused:
        rerank.load_artifact(unknown)
    assert refused.value.reason == "features" and "moon_phase" in str(refused.value)

    fewer = version(features=FEATURES[:3])  # a booster of 17 inputs, 3 names
    with pytest.raises(rerank.ArtifactError) as refused:
        rerank.load_artifact(fewer)
    assert refused.value.reason == "features"
    assert f"{len(FEATURES)} inputs, 3 named" in str(refused.value)


def test_serving_falls_back_past_a_version_whose_features_do_not_fit():
    good = version()
    registry.promote(good.id)
    bad = version(features=FEATURES[:3], against=good.id)
    registry.promote(bad.id)
    reasons: list[str] = []

    def record(sender, kind, reason, **kwargs):
        reasons.append(reason)

    model_fallback.connect(record)
    try:
        model = rerank.current()
    finally:
        model_fallback.disconnect(record)
    assert model is not None and model.version_id == good.id
    assert reasons == ["features"]


def test_a_disabled_reranker_serves_the_linear_ranking_whatever_is_active():
    registry.promote(version().id)
    with override_settings(ML_RERANKER_ENABLED=False):
        assert rerank.current() is None
    assert rerank.current() is not None


@override_settings(ML_MODEL_RELOAD_SECONDS=3600)
def test_within_the_reload_interval_a_worker_keeps_the_model_it_holds():
    first = version()
    registry.promote(first.id)
    held = rerank.current()
    assert held.version_id == first.id
    registry.rollback("reranker")
    assert rerank.current() is held  # not asked again before the interval ends
    rerank.reset()
    assert rerank.current() is None  # asked: the linear ranking


def test_nothing_to_rank_or_explain_gives_nothing():
    model = rerank.load_artifact(version())
    assert rerank.rerank([], model) == []
    assert rerank.explain([], model) == []


def test_a_model_not_boosted_from_the_linear_ranking_scores_and_explains_alone():
    model = rerank.load_artifact(version(boost=False))
    assert not model.boost_from_linear
    signals = [{name: 0.5 for name in FEATURES} | {"saves_log": s} for s in (0.1, 0.9, 0.5)]
    # The linear scores say the opposite: without boosting they are not added.
    ranked = [Scored(i + 1, 100.0 * (3 - i), s) for i, s in enumerate(signals)]
    out = rerank.rerank(ranked, model)
    assert [s.item_id for s in out] == [2, 3, 1]
    assert all(s.score < 50 for s in out)
    explained = rerank.explain(signals, model)
    assert len(explained) == 3
    for named in explained:
        assert named[0][0] == "saves_log"
        assert "linear" not in {name for name, _ in named}
