"""Experiments end to end through the home API, with experiments_app's own provider: the
variant changes the feed, the response and the served log name it, the exposure is logged
once, bandit choices are logged with their propensities, and a Redis outage degrades the
bandit without losing an exposure."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from experience_app.models import ServedFeed
from experience_app.services.feed import served_log
from experiments_app import serving
from experiments_app.assignment import assign
from experiments_app.models import Bandit, Decision, Exposure
from experiments_app.services import lifecycle
from experiments_app.services.validation import VariantSpec
from tests.experience.utils import HOME, ingest, make_item, sections
from tests.factories import CategoryFactory, ProviderFactory, SubscriptionFactory, UserFactory

pytestmark = pytest.mark.django_db

ORDER = ["trending", "fresh", "for_you", "continue_reading", "because_you_read"]


@pytest.fixture(autouse=True)
def _fresh_provider_cache():
    serving.reset_cache()
    yield
    serving.reset_cache()


@pytest.fixture
def world(user):
    food = CategoryFactory(name="Food")
    followed, other = ProviderFactory(), ProviderFactory()
    SubscriptionFactory(user=user, provider=followed)
    items = [make_item(hours_ago=1 + i, categories=[food], provider=other) for i in range(10)]
    items += [make_item(hours_ago=2 + i, provider=followed) for i in range(3)]
    crowd = UserFactory()
    for item in items[:4]:
        ingest(crowd, item, "click", hours_ago=1)
    return items


def _start(key: str, control: dict, treat: dict, *, treat_weight: int = 100):
    experiment = lifecycle.experiment_create(
        key=key,
        hypothesis="The treatment lifts home CTR.",
        layer_key="home",
        variants=[
            VariantSpec("control", 100 - treat_weight, True, control),
            VariantSpec("treat", treat_weight, False, treat),
        ],
    )
    return lifecycle.experiment_start(experiment)


def test_a_running_experiment_reorders_the_feed_and_logs_one_exposure(auth_client, user, world):
    before = [s["key"] for s in auth_client.get(HOME).json()["sections"]]
    experiment = _start("order-test", {}, {"section_order": ORDER})

    body = auth_client.get(HOME).json()
    again = auth_client.get(HOME).json()

    assert before[:2] != ["trending", "fresh"]
    assert [s["key"] for s in body["sections"]][:2] == ["trending", "fresh"]
    assert body["experiments"] == {"order-test": "treat"} and body["cached"] is False
    assert again["cached"] is True and again["experiments"] == {"order-test": "treat"}
    (exposure,) = Exposure.objects.filter(experiment=experiment)
    assert exposure.user_id == user.id and exposure.variant.key == "treat"
    served_log.flush()
    logged = ServedFeed.objects.order_by("served_at").values_list("experiments", flat=True)
    assert list(logged) == [{}, {"order-test": "treat"}, {"order-test": "treat"}]

    # Stopped: the next request is the default feed again, and nobody is exposed anymore.
    lifecycle.experiment_stop(experiment, reason="done")
    serving.reset_cache()
    after = auth_client.get(HOME).json()
    assert after["experiments"] == {} and after["cached"] is False
    assert Exposure.objects.count() == 1


def test_users_are_split_by_their_assignment_and_control_users_see_no_change(world):
    experiment = _start("split-test", {}, {"weights": {"freshness": 3.0}}, treat_weight=50)
    experiment = type(experiment).objects.prefetch_related("variants").get(pk=experiment.pk)
    users = [UserFactory() for _ in range(12)]

    for member in users:
        client = APIClient()
        client.force_authenticate(member)
        body = client.get(HOME).json()
        expected = assign(experiment, member.id).key
        assert body["experiments"] == {"split-test": expected}
    exposed = dict(Exposure.objects.values_list("user_id", "variant__key"))
    assert exposed == {m.id: assign(experiment, m.id).key for m in users}
    assert set(exposed.values()) == {"control", "treat"}


def test_a_bandit_variant_logs_its_choice_with_the_propensity(auth_client, user, world):
    Bandit.objects.create(
        key="home-order",
        kind="thompson",
        arms={"default": ORDER[::-1], "trending_first": ORDER},
    )
    _start("bandit-test", {}, {"bandit": "home-order"})

    body = auth_client.get(HOME).json()

    (decision,) = Decision.objects.filter(kind="bandit")
    assert decision.user_id == user.id and decision.key == "home-order"
    assert 0 < decision.propensity <= 1
    assert decision.context.keys() == {"segment", "daypart"}
    assert decision.experiments == {"bandit-test": "treat"}
    assert str(decision.request_id) == body["request_id"]
    shown = [s["key"] for s in body["sections"]]
    order = Bandit.objects.get().arms[decision.arm]
    assert shown == [k for k in order if k in shown]


def test_with_redis_stopped_a_bandit_variant_still_serves_and_loses_no_exposure(
    auth_client, user, world, redis_state_server
):
    Bandit.objects.create(
        key="home-order",
        kind="linucb",
        arms={"default": ORDER[::-1], "trending_first": ORDER},
    )
    _start("outage-test", {}, {"bandit": "home-order", "weights": {"freshness": 1.0}})
    redis_state_server.stop()

    response = auth_client.get(HOME)

    assert response.status_code == 200
    body = response.json()
    assert body["degraded"] is True and body["experiments"] == {"outage-test": "treat"}
    assert Exposure.objects.filter(user=user).count() == 1
    # The bandit chose from its prior (no state anywhere yet), and the choice is logged.
    assert Decision.objects.filter(kind="bandit", user=user).count() == 1
    assert sections(body)


def test_readers_in_a_running_experiment_get_no_pre_built_feed_nor_an_exposure(user, world):
    from experience_app.services.feed import cache

    reader = UserFactory()
    experiment = _start("prebuild-test", {}, {"section_order": ORDER}, treat_weight=50)

    assert cache.prebuild(user.id, ttl=600) is None
    assert cache.prebuild(reader.id, ttl=600) is None
    assert not Exposure.objects.filter(experiment=experiment).exists()
    assert cache.cached_feeds([user.id, reader.id], now=timezone.now()) == set()
    # Stopped, the experiment no longer holds the readers back.
    lifecycle.experiment_stop(experiment, reason="done")
    serving.reset_cache()
    assert cache.prebuild(user.id, ttl=600) is True
