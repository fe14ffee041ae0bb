"""Proof by simulation with known ground truth (issue 12): the same functions and seeds as
``python -m experiments_app.simulate``, which prints the figures."""

from __future__ import annotations

import pytest

from experiments_app import simulate


def test_aa_false_positive_rate_is_nominal_at_one_look():
    res = simulate.aa_fixed_horizon(n_sims=500)
    assert 0.03 <= res["fpr_proportion"] <= 0.07
    assert 0.03 <= res["fpr_mean"] <= 0.07


def test_daily_peeking_inflates_a_naive_test_but_not_the_spending_boundary():
    res = simulate.aa_daily_peeking(n_sims=2000, days=14)
    assert res["fpr_naive_peeking_proportion"] > 0.10
    assert 0.03 <= res["fpr_sequential_proportion"] <= 0.07
    assert 0.03 <= res["fpr_sequential_mean"] <= 0.07


def test_a_true_lift_is_detected_with_the_promised_power():
    res = simulate.power_check(n_sims=1000)
    assert res["power_fixed"] == pytest.approx(0.80, abs=0.04)
    assert res["power_sequential_14_looks"] > 0.70


def test_srm_flags_a_52_48_split():
    res = simulate.srm_check(n_sims=500)
    assert res["srm_blocking_rate_broken_52_48"] >= 0.95
    assert res["srm_blocking_rate_sound_50_50"] <= 0.01


def test_cuped_narrows_the_interval_and_keeps_the_error_rate():
    res = simulate.cuped_check(n_sims=500, rho=0.7)
    assert res["cuped_variance_reduction"] == pytest.approx(0.49, abs=0.03)
    assert res["cuped_ci_width_ratio"] < 0.75
    assert 0.03 <= res["cuped_fpr"] <= 0.07


def test_thompson_regret_is_below_uniform_and_epsilon_greedy():
    res = simulate.bandit_regret()
    assert res["regret_thompson"] < res["regret_epsilon_greedy"] < res["regret_uniform"]


def test_linucb_uses_the_context():
    res = simulate.linucb_regret()
    assert res["contextual_regret_linucb"] < 0.5 * res["contextual_regret_thompson"]
    assert res["contextual_regret_linucb"] < 0.5 * res["contextual_regret_uniform"]


def test_off_policy_intervals_cover_the_true_value():
    res = simulate.ope_coverage(n_sims=500)
    for name in ("ips", "snips", "doubly_robust"):
        assert res[f"ope_coverage_{name}"] >= 0.90
