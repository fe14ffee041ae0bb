"""Off-policy evaluation on the product's decision log (``manage.py evaluate_policy``)."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from experiments_app.models import Bandit, BanditSnapshot, Decision
from experiments_app.services import policy_eval
from inbo.errors import InvalidInput, NotFound
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def _click_probability(signals: dict) -> float:
    """The simulated truth: fresh items get clicked, popularity does not matter."""
    return 0.05 + 0.6 * signals["freshness"]


def _explore_log(n: int = 3000, seed: int = 3) -> float:
    """``n`` exploration-slot decisions drawn by a softmax over the linear scores (as the
    feed draws them), rewards from ``_click_probability``. Returns the true value of the
    policy "the freshest item"."""
    rng = np.random.default_rng(seed)
    users = [UserFactory() for _ in range(20)]
    rows, truth = [], 0.0
    for i in range(n):
        pool = []
        for item in range(5):
            signals = {
                "freshness": float(rng.random()),
                "popularity": float(rng.normal()),
                "ctr": float(rng.random() * 0.2),
            }
            pool.append({"item_id": 1000 * i + item, "signals": signals})
        scores = np.array(
            [c["signals"]["popularity"] + 0.4 * c["signals"]["freshness"] for c in pool]
        )
        p = np.exp(scores - scores.max())
        p /= p.sum()
        for c, share in zip(pool, p, strict=True):
            c["propensity"] = float(share)
        chosen = int(rng.choice(5, p=p))
        reward = float(rng.random() < _click_probability(pool[chosen]["signals"]))
        best = max(pool, key=lambda c: c["signals"]["freshness"])
        truth += _click_probability(best["signals"])
        rows.append(
            Decision(
                user=users[i % len(users)],
                kind="explore",
                key="for_you",
                arm=str(pool[chosen]["item_id"]),
                propensity=float(p[chosen]),
                candidates=pool,
                decided_at=NOW - timedelta(minutes=n - i),
                reward=reward,
                rewarded_at=NOW,
            )
        )
    Decision.objects.bulk_create(rows)
    return truth / n


FRESHEST = 'weights:{"freshness": 1.0, "popularity": 0.0, "affinity": 0.0, ' + (
    '"provider_affinity": 0.0, "subscribed": 0.0, "seen": 0.0, "similarity": 0.0}'
)


def test_a_weight_set_is_estimated_within_its_interval_on_the_exploration_log():
    truth = _explore_log()

    logging, freshest = policy_eval.evaluate_policies([FRESHEST], kind="explore", key="for_you")

    assert logging.policy == "logging"
    # The logging policy replayed on its own log is its observed mean.
    (ips_log, snips_log, _) = logging.estimates
    assert ips_log.value == pytest.approx(logging.observed, abs=0.02)
    assert snips_log.value == pytest.approx(logging.observed, abs=1e-9)
    by_name = {e.estimator: e for e in freshest.estimates}
    assert set(by_name) == {"ips", "snips", "doubly_robust"}
    for estimate in by_name.values():
        assert estimate.covers(truth), (estimate, truth)
        assert 0 < estimate.ess < freshest.rows
    # The candidate is better than what was logged, and the estimators see it.
    assert truth > logging.observed + 0.1
    assert by_name["snips"].ci_low > logging.observed
    assert 0 < freshest.match_rate < 1


def test_a_fixed_arm_and_the_bandit_itself_are_estimated_on_the_bandit_log():
    bandit = Bandit.objects.create(
        key="home-order",
        kind="epsilon_greedy",
        arms={"default": ["for_you", "trending"], "trending_first": ["trending", "for_you"]},
        params={"epsilon": 0.2},
    )
    truth = {"default": 0.2, "trending_first": 0.35}
    rng = np.random.default_rng(5)
    user = UserFactory()
    rows = []
    for i in range(2000):
        arm = "default" if rng.random() < 0.7 else "trending_first"
        rows.append(
            Decision(
                user=user,
                kind="bandit",
                key="home-order",
                arm=arm,
                propensity=0.7 if arm == "default" else 0.3,
                context={"segment": "warm", "daypart": i % 4},
                decided_at=NOW - timedelta(minutes=i),
                reward=float(rng.random() < truth[arm]),
                rewarded_at=NOW,
            )
        )
    Decision.objects.bulk_create(rows)
    # The bandit's current state prefers trending_first: greedy 0.9 + 0.1 exploration.
    BanditSnapshot.objects.create(
        bandit=bandit,
        state={
            "kind": "epsilon_greedy",
            "version": 1,
            "epsilon": 0.2,
            "counts": [100.0, 100.0],
            "sums": [20.0, 35.0],
        },
        decisions_applied=200,
        taken_at=NOW,
    )

    values = policy_eval.evaluate_policies(
        ["arm:trending_first", "bandit:home-order"], kind="bandit", key="home-order"
    )

    fixed = {e.estimator: e for e in values[1].estimates}
    assert all(e.covers(truth["trending_first"]) for e in fixed.values())
    learned = {e.estimator: e for e in values[2].estimates}
    expected = 0.9 * truth["trending_first"] + 0.1 * truth["default"]
    assert all(e.covers(expected) for e in learned.values())
    assert values[2].match_rate == 1.0


def test_arm_probabilities_of_a_policy_sum_to_one():
    from experiments_app.bandits import LinUCB, ThompsonBernoulli

    rng = np.random.default_rng(0)
    for policy in (ThompsonBernoulli(3), LinUCB(3, 7, epsilon=0.1)):
        p = policy_eval.arm_probabilities(policy, {"segment": "cold", "daypart": 1}, rng)
        assert math.isclose(float(p.sum()), 1.0) and (p > 0).all()


@pytest.mark.parametrize(
    ("spec", "kind", "key", "error"),
    [
        ("nonsense", "explore", "for_you", InvalidInput),
        ('weights:{"gravity": 1}', "explore", "for_you", InvalidInput),
        ("weights:[1, 2]", "explore", "for_you", InvalidInput),
        ('weights:{"freshness": "high"}', "explore", "for_you", InvalidInput),
        ("reranker:v7", "explore", "for_you", NotFound),
        ("reranker:active", "explore", "for_you", NotFound),
        ("reranker:latest", "explore", "for_you", InvalidInput),
        ("arm:x", "bandit", "no-such-bandit", NotFound),
        ("x" * 3000, "explore", "for_you", InvalidInput),
    ],
)
def test_a_policy_that_cannot_be_evaluated_is_refused_with_a_reason(spec, kind, key, error):
    with pytest.raises(error):
        policy_eval.parse_policy(spec, kind=kind, key=key)


def test_too_few_rewarded_decisions_are_refused():
    with pytest.raises(InvalidInput):
        policy_eval.evaluate_policies([], kind="explore", key="for_you")


def test_evaluate_policy_prints_every_estimator_and_json():
    _explore_log(n=300)
    out = StringIO()
    call_command("evaluate_policy", "--policy", FRESHEST, stdout=out)
    text = out.getvalue()
    assert "logging" in text and "doubly_robust" in text and "ESS" in text

    out = StringIO()
    call_command(
        "evaluate_policy",
        "--policy",
        "weights:default",
        "--since",
        "2000-01-01",
        "--json",
        stdout=out,
    )
    data = json.loads(out.getvalue())
    assert [v["policy"] for v in data] == ["logging", "weights:default"]
    assert {e["estimator"] for e in data[1]["estimates"]} == {"ips", "snips", "doubly_robust"}

    with pytest.raises(CommandError):
        call_command("evaluate_policy", "--policy", "reranker:v99", stdout=StringIO())
    with pytest.raises(CommandError):
        call_command("evaluate_policy", "--since", "yesterday", stdout=StringIO())
