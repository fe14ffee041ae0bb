"""Variants in the feed: config validation, the treatment the provider assembles (layers,
control, anonymous users, targeting), exposures logged once and decisions logged with their
propensities, with or without Redis."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from experience_app import treatments
from experience_app.treatments import Decision, FeedContext, Treatment
from experiments_app import serving
from experiments_app.models import Decision as DecisionRow
from experiments_app.models import Experiment, Exposure
from experiments_app.services import decisions, lifecycle
from experiments_app.services.validation import VariantSpec, validate_config
from inbo.errors import InvalidInput
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ORDER = ["trending", "for_you", "continue_reading", "because_you_read", "fresh"]


def running(key: str, layer: str, config: dict, *, control: dict | None = None, **kw):
    """A running experiment whose every user is in ``treat`` (the control weighs 0)."""
    experiment = lifecycle.experiment_create(
        key=key,
        hypothesis="It lifts home CTR.",
        layer_key=layer,
        variants=[
            VariantSpec("control", kw.pop("control_weight", 0), True, control or {}),
            VariantSpec("treat", kw.pop("treat_weight", 100), False, config),
        ],
        **kw,
    )
    return lifecycle.experiment_start(experiment)


def context() -> FeedContext:
    return FeedContext(now=timezone.now(), platform="web")


# --- config validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"colour": "red"}, "config.colour"),
        ({"weights": {"freshness": 11}}, "config.weights.freshness"),
        ({"weights": {"freshness": "high"}}, "config.weights.freshness"),
        ({"weights": {"clicks": 1.0}}, "config.weights.clicks"),
        (
            {"weights": {"freshness_half_life_hours": 0.5}},
            "config.weights.freshness_half_life_hours",
        ),
        ({"weights": {}}, "config.weights"),
        ({"reranker": "reranker:3"}, "config.reranker"),
        ({"reranker": "xgboost"}, "config.reranker"),
        ({"sources_off": ["trending", "trending"]}, "config.sources_off"),
        ({"sources_off": ["twitter"]}, "config.sources_off"),
        ({"sources_off": "trending"}, "config.sources_off"),
        ({"section_order": ["for_you", "ads"]}, "config.section_order"),
        ({"section_order": ["for_you", "for_you"]}, "config.section_order"),
        ({"section_order": []}, "config.section_order"),
        ({"bandit": "nobody"}, "config.bandit"),
        ({"explore": {"position": 20}}, "config.explore.position"),
        ({"explore": {"position": 1.5}}, "config.explore.position"),
        ({"explore": {"pool": 1}}, "config.explore.pool"),
        ({"explore": {"temperature": 0}}, "config.explore.temperature"),
        ({"explore": {"max_age_hours": 721}}, "config.explore.max_age_hours"),
        ({"explore": {"slot": 3}}, "config.explore.slot"),
        ({"explore": [1]}, "config.explore"),
        ({"weights": {"freshness": float("nan")}}, "config"),
        ({"sources_off": ["x" * 60] * 80}, "config"),
    ],
)
def test_invalid_config_is_refused_with_the_field_named(config, field):
    with pytest.raises(InvalidInput) as caught:
        validate_config(config)
    assert field in caught.value.details
    assert caught.value.status_code == 400
    assert caught.value.message.startswith(field)


def test_every_problem_of_a_config_is_reported():
    with pytest.raises(InvalidInput) as caught:
        validate_config({"weights": {"freshness": 20, "seen": -20}, "reranker": 3})
    assert set(caught.value.details) == {
        "config.weights.freshness",
        "config.weights.seen",
        "config.reranker",
    }
    assert "(and 2 more)" in caught.value.message


def test_a_variant_with_a_bad_config_refuses_the_experiment():
    with pytest.raises(InvalidInput) as caught:
        running("bad", "feed", {"reranker": "magic"})
    assert list(caught.value.details) == ["variants.treat.config.reranker"]
    assert not Experiment.objects.exists()


def test_a_full_valid_config_is_accepted():
    decisions.bandit_create(
        "order", kind="thompson", arms={"default": ORDER[1:], "trending_first": ORDER}
    )
    validate_config(
        {
            "weights": {"freshness": 0.8, "seen": -1, "freshness_half_life_hours": 12},
            "reranker": "reranker:v3",
            "sources_off": ["trending", "als"],
            "section_order": ["trending", "for_you"],
            "bandit": "order",
            "explore": {"position": 0, "pool": 50, "temperature": 10, "max_age_hours": 720},
        }
    )
    validate_config({"reranker": "linear"})
    validate_config({})


# --- the treatment -----------------------------------------------------------------------


def test_the_provider_is_registered_by_the_app():
    assert treatments.provider() is serving.provider


def test_no_running_experiment_gives_the_empty_treatment(user):
    lifecycle.experiment_create(
        key="draft",
        hypothesis="h",
        layer_key="feed",
        variants=[VariantSpec("control", 0, True), VariantSpec("treat", 100, False, {})],
    )
    assert serving.provider.treatment(user.pk, context()) == Treatment()


def test_variants_of_two_layers_merge_in_start_order(user):
    running(
        "ranking",
        "ranking",
        {"weights": {"freshness": 0.8}, "section_order": ["fresh"], "sources_off": ["als"]},
    )
    running(
        "layout",
        "layout",
        {
            "weights": {"seen": 2},
            "section_order": ["trending", "for_you"],
            "sources_off": ["trending"],
            "reranker": "linear",
            "explore": {"pool": 20},
        },
    )
    got = treatments.resolve(user.pk, context())
    assert got.experiments_json() == {"ranking": "treat", "layout": "treat"}
    assert got.weights == {"freshness": 0.8, "seen": 2.0}
    assert got.section_order == ("trending", "for_you")  # the later experiment wins
    assert got.sources_off == frozenset({"als", "trending"})
    assert got.reranker == "linear"
    assert got.explore == {"position": 2, "pool": 20, "temperature": 1.0, "max_age_hours": 48}
    assert got.signature()


def test_reranker_active_means_the_registry_choice(user):
    running("rr", "ranking", {"reranker": "active"})
    assert serving.provider.treatment(user.pk, context()).reranker is None


def test_control_users_are_assigned_with_nothing_changed(user):
    running("ctl", "feed", {"weights": {"freshness": 2}}, control_weight=100, treat_weight=0)
    got = serving.provider.treatment(user.pk, context())
    assert got.experiments_json() == {"ctl": "control"}
    assert not got.empty  # the control's exposure is logged too
    assert got.weights == {} and got.section_order is None and got.reranker is None


def test_anonymous_users_get_the_control(user):
    running("anon", "feed", {"weights": {"freshness": 2}})
    assert serving.provider.treatment(None, context()).experiments_json() == {"anon": "control"}
    assert treatments.resolve(None, context()) == Treatment()  # the feed asks no provider


def test_new_users_targeting_reads_the_join_date(django_assert_num_queries):
    new = UserFactory()
    old = UserFactory()
    type(old).objects.filter(pk=old.pk).update(date_joined=timezone.now() - timedelta(days=30))
    running("onboarding", "feed", {"section_order": ["fresh"]}, targeting={"new_users_days": 7})
    serving.provider.treatment(new.pk, context())  # loads the experiments
    with django_assert_num_queries(1):  # the join date, once
        assert serving.provider.treatment(new.pk, context()).experiments_json() == {
            "onboarding": "treat"
        }
    assert serving.provider.treatment(old.pk, context()) == Treatment()


def test_the_common_path_costs_no_query(user, django_assert_num_queries):
    running("a", "one", {"weights": {"freshness": 1}})
    running("b", "two", {"sources_off": ["fresh"]}, targeting={"platform": "web"})
    serving.provider.treatment(user.pk, context())
    with django_assert_num_queries(0):
        for _ in range(5):
            assert len(serving.provider.treatment(user.pk, context()).assignments) == 2


def test_a_started_experiment_shows_without_waiting_for_the_cache(user):
    assert serving.provider.treatment(user.pk, context()) == Treatment()
    running("late", "feed", {"weights": {"freshness": 1}})
    assert serving.provider.treatment(user.pk, context()).experiments_json() == {"late": "treat"}


def test_an_experiment_with_an_invalid_stored_config_is_left_out(user):
    experiment = running("old", "feed", {"weights": {"freshness": 1}})
    experiment.variants.filter(key="treat").update(config={"weights": {"freshness": 99}})
    serving.reset_cache()
    assert serving.provider.treatment(user.pk, context()) == Treatment()


# --- served: exposures and decisions ---------------------------------------------------


def _served(user, treatment, decisions_=()):
    treatments.served(
        user.pk, treatment, list(decisions_), request_id=str(uuid.uuid4()), now=timezone.now()
    )


def test_exposure_is_logged_once_per_user_and_experiment(user, other_user):
    running("once", "feed", {"weights": {"freshness": 1}})
    for _ in range(3):
        _served(user, serving.provider.treatment(user.pk, context()))
    _served(other_user, serving.provider.treatment(other_user.pk, context()))
    assert Exposure.objects.filter(experiment__key="once").count() == 2
    assert set(Exposure.objects.values_list("variant__key", flat=True)) == {"treat"}


def test_decisions_are_logged_with_propensities_and_the_experiments(user):
    running("exp", "feed", {"explore": {}})
    treatment = serving.provider.treatment(user.pk, context())
    request_id = str(uuid.uuid4())
    chosen = [
        Decision("bandit", "order", "default", 0.4, {"segment": "warm", "daypart": 2}, (), {}),
        Decision(
            "explore",
            "for_you",
            "17",
            0.125,
            {},
            ({"item_id": 17, "score": 0.3, "signals": {"freshness": 0.9}},),
            {"position": 2},
        ),
    ]
    treatments.served(user.pk, treatment, chosen, request_id=request_id, now=timezone.now())
    rows = {row.kind: row for row in DecisionRow.objects.all()}
    assert rows["bandit"].propensity == pytest.approx(0.4)
    assert rows["bandit"].context == {"segment": "warm", "daypart": 2}
    assert rows["explore"].propensity == pytest.approx(0.125)
    assert rows["explore"].candidates[0]["item_id"] == 17
    assert rows["explore"].experiments == {"exp": "treat"}
    assert str(rows["explore"].request_id) == request_id
    assert all(row.reward is None for row in rows.values())
    assert Exposure.objects.count() == 1


def test_served_needs_no_redis(user, redis_state_server):
    running("down", "feed", {"weights": {"freshness": 1}})
    redis_state_server.stop()
    treatment = serving.provider.treatment(user.pk, context())
    _served(user, treatment, [Decision("bandit", "order", "default", 0.5)])
    assert Exposure.objects.count() == 1
    assert DecisionRow.objects.count() == 1
