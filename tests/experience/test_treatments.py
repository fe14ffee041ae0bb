"""Experiments meet the feed through a treatment provider (experience_app.treatments).

These tests register a provider of their own, so they test the feed's side of the contract
alone; experiments_app's provider has its tests in tests/experiments.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from experience_app import treatments
from experience_app.models import ServedFeed
from experience_app.ranking import Candidate, Scored
from experience_app.services import registry, rerank
from experience_app.services.feed import served_log
from experience_app.services.feed.build import explore_slot
from experience_app.treatments import Assignment, Decision, Treatment
from reading_app.models import Item
from tests.experience.test_rerank_loading import version as reranker_version
from tests.experience.utils import HOME, ingest, make_item, section_url, sections
from tests.factories import CategoryFactory, ProviderFactory, SubscriptionFactory, UserFactory

pytestmark = pytest.mark.django_db


@dataclass
class Provider:
    """A provider answering a fixed treatment and recording what the feed tells it."""

    answer: Treatment = field(default_factory=Treatment)
    order: tuple[str, ...] = ()
    served_calls: list = field(default_factory=list)
    contexts: list = field(default_factory=list)
    fail: Exception | None = None
    fail_served: Exception | None = None

    def treatment(self, user_id, context):
        self.contexts.append(context)
        if self.fail:
            raise self.fail
        return self.answer

    def choose(self, bandit, user_id, context, now):
        return Decision(
            kind="bandit",
            key=bandit,
            arm="reordered",
            propensity=0.25,
            context=context,
            payload={"order": list(self.order)},
        )

    def served(self, user_id, treatment, decisions, *, request_id, now):
        if self.fail_served:
            raise self.fail_served
        self.served_calls.append((user_id, treatment, list(decisions), request_id))


@pytest.fixture
def provider():
    before = treatments.provider()
    mine = Provider()
    treatments.set_provider(mine)
    rerank.reset()
    yield mine
    treatments.set_provider(before)
    rerank.reset()


def _in(variant: str = "treatment", **changes) -> Treatment:
    return Treatment(assignments=(Assignment("exp", variant, 1, 2),), **changes)


@pytest.fixture
def world(user):
    tech, food = CategoryFactory(name="Tech"), CategoryFactory(name="Food")
    followed, other = ProviderFactory(), ProviderFactory()
    SubscriptionFactory(user=user, provider=followed)
    old = [make_item(hours_ago=100 + i, categories=[tech], provider=other) for i in range(6)]
    new = [make_item(hours_ago=1 + i, categories=[food], provider=other) for i in range(6)]
    fresh = [make_item(hours_ago=2 + i, provider=followed) for i in range(3)]
    crowd = UserFactory()
    for n, item in enumerate(old):
        for _ in range(8 - n):
            ingest(crowd, item, "click", hours_ago=1)
    return {"old": old, "new": new, "fresh": fresh}


def _served_rows() -> list[ServedFeed]:
    served_log.flush()
    return list(ServedFeed.objects.order_by("served_at"))


def test_without_experiments_the_feed_says_none_and_logs_none(auth_client, world, provider):
    body = auth_client.get(HOME).json()

    assert body["experiments"] == {}
    assert provider.served_calls == []  # nothing to expose
    (row,) = _served_rows()
    assert row.experiments == {} and row.decisions == []
    assert row.latency_ms is not None and row.latency_ms > 0


def test_a_variant_weights_change_the_ranking_and_are_named_in_response_and_log(
    auth_client, user, world, provider
):
    control = [e["item"]["id"] for e in sections(auth_client.get(HOME).json())["for_you"]["items"]]
    provider.answer = _in(weights={"freshness": -50.0})  # the oldest first

    body = auth_client.get(HOME).json()

    # A new treatment is a new feed, not the cached one.
    assert body["cached"] is False
    assert body["experiments"] == {"exp": "treatment"}
    treated = [e["item"]["id"] for e in sections(body)["for_you"]["items"]]
    assert treated != control
    published = dict(Item.objects.filter(id__in=treated).values_list("id", "published_at"))
    assert treated[0] == min(treated, key=published.__getitem__)
    (call,) = provider.served_calls
    assert call[0] == user.id and call[1] == provider.answer and call[3] == body["request_id"]
    # A cache hit under the same treatment exposes nobody again and still names the variant.
    again = auth_client.get(HOME).json()
    assert again["cached"] is True and again["experiments"] == {"exp": "treatment"}
    assert len(provider.served_calls) == 1
    rows = _served_rows()
    assert [r.experiments for r in rows] == [{}, {"exp": "treatment"}, {"exp": "treatment"}]


def test_a_variant_switches_candidate_sources_off(auth_client, world, provider):
    provider.answer = _in(sources_off=frozenset({"trending", "fresh"}))

    body = auth_client.get(HOME).json()

    assert "trending" not in sections(body) and "fresh" not in sections(body)
    assert "for_you" in sections(body)


def test_a_variant_sets_the_section_order(auth_client, world, provider):
    provider.answer = _in(section_order=("trending", "fresh"))

    keys = [s["key"] for s in auth_client.get(HOME).json()["sections"]]

    assert keys[:2] == ["trending", "fresh"]
    assert keys[2:] == [k for k in keys[2:] if k in ("for_you", "because_you_read")]


def test_a_bandit_picks_the_order_and_its_propensity_is_logged(auth_client, world, provider):
    provider.answer = _in(bandit="home-order")
    provider.order = ("fresh", "trending", "for_you")

    body = auth_client.get(HOME).json()

    assert [s["key"] for s in body["sections"]][:3] == ["fresh", "trending", "for_you"]
    (call,) = provider.served_calls
    (decision,) = call[2]
    assert decision.kind == "bandit" and decision.propensity == 0.25
    assert set(decision.context) == {"segment", "daypart"}
    auth_client.get(HOME)  # a hit serves the same choice and logs it with its request
    rows = _served_rows()
    assert [r.decisions[0]["arm"] for r in rows] == ["reordered", "reordered"]
    assert rows[0].decisions[0]["propensity"] == 0.25


def test_a_variant_pins_a_reranker_version_or_the_linear_ranking(auth_client, world, provider):
    active = reranker_version(boost=True)
    registry.promote(active.id, force=True)
    other = reranker_version(boost=True)
    assert auth_client.get(HOME).json()["ranker"] == active.label

    provider.answer = _in(reranker="linear")
    assert auth_client.get(HOME).json()["ranker"] == "linear"

    provider.answer = _in("pinned", reranker=other.label)
    body = auth_client.get(HOME).json()
    assert body["ranker"] == other.label
    assert sections(body)["for_you"]["items"][0]["top_features"]

    provider.answer = _in("gone", reranker="reranker:v999")
    assert auth_client.get(HOME).json()["ranker"] == "linear"  # unknown version: linear


def test_an_exploration_slot_draws_an_under_explored_item_with_its_propensity(
    auth_client, world, provider
):
    provider.answer = _in(explore={"position": 1, "pool": 5, "temperature": 1.0})

    body = auth_client.get(HOME).json()

    (call,) = provider.served_calls
    (decision,) = call[2]
    assert decision.kind == "explore" and decision.key == "for_you"
    pool = decision.candidates
    assert 2 <= len(pool) <= 5
    assert abs(sum(c["propensity"] for c in pool) - 1.0) < 1e-3
    chosen = next(c for c in pool if str(c["item_id"]) == decision.arm)
    assert chosen["propensity"] == pytest.approx(decision.propensity, abs=1e-6)
    assert all(c["signals"] for c in pool)  # what off-policy evaluation rescoring needs
    shown = [e["item"]["id"] for e in sections(body)["for_you"]["items"]]
    assert int(decision.arm) in shown


def test_explore_slot_draws_in_proportion_to_softmax_propensities():
    now = timezone.now()
    ranked = [Scored(i, 1.0 - i * 0.5, {"impressions_log": 0.0}) for i in range(4)]
    candidates = [Candidate(i, 1, (), now - timedelta(hours=1)) for i in range(4)]
    rng = random.Random(7)
    counts: dict[str, int] = {}
    propensity = {}
    for _ in range(4000):
        reordered, decision = explore_slot(
            ranked, {"position": 0, "pool": 4}, now=now, candidates=candidates, rng=rng
        )
        assert decision is not None and reordered[0].item_id == int(decision.arm)
        counts[decision.arm] = counts.get(decision.arm, 0) + 1
        propensity[decision.arm] = decision.propensity
    for arm, n in counts.items():
        assert abs(n / 4000 - propensity[arm]) < 0.03


def test_explore_slot_needs_two_fresh_under_explored_items():
    now = timezone.now()
    ranked = [Scored(1, 1.0, {"impressions_log": 0.0}), Scored(2, 0.5, {"impressions_log": 9.0})]
    candidates = [Candidate(i, 1, (), now) for i in (1, 2)]
    same, decision = explore_slot(ranked, {"position": 0}, now=now, candidates=candidates)
    assert decision is None and same == ranked


def test_a_failing_provider_serves_the_default_feed(auth_client, world, provider):
    provider.fail = RuntimeError("boom")

    response = auth_client.get(HOME)

    assert response.status_code == 200
    assert response.json()["experiments"] == {}


def test_an_exposure_that_cannot_be_written_fails_the_request_rather_than_lose_it(
    auth_client, world, provider
):
    provider.answer = _in()
    provider.fail_served = OperationalError("database is away")

    response = auth_client.get(HOME)

    assert response.status_code == 503
    # Nothing was cached under the treatment: the next request builds and exposes again.
    provider.fail_served = None
    assert auth_client.get(HOME).json()["cached"] is False
    assert len(provider.served_calls) == 1


def test_the_platform_header_reaches_the_provider_when_known(auth_client, world, provider):
    auth_client.get(HOME, HTTP_X_CLIENT_PLATFORM="iOS")
    auth_client.get(HOME, HTTP_X_CLIENT_PLATFORM="toaster" * 100)

    assert [c.platform for c in provider.contexts] == ["ios", None]


def test_a_further_page_built_anew_carries_the_variant(auth_client, world, provider):
    provider.answer = _in(weights={"freshness": 2.0})
    page = auth_client.get(section_url("for_you")).json()

    assert page["items"]
    rows = _served_rows()
    assert rows[-1].experiments == {"exp": "treatment"}


def test_the_signature_names_what_the_treatment_changes():
    assert Treatment().signature() == ""
    a = _in(weights={"freshness": 1.0})
    assert a.signature() == _in(weights={"freshness": 1.0}).signature()
    assert a.signature() != _in(weights={"freshness": 2.0}).signature()
    assert a.signature() != _in("other", weights={"freshness": 1.0}).signature()
