"""Unit tests of the experiment statistics, bandits and off-policy estimators (issue 12)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from statsmodels.stats import proportion as smprop
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from experiments_app import bandits, ope
from experiments_app import stats as st


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_compare_means_agrees_with_statsmodels_welch():
    rng = _rng()
    c, t = rng.normal(10, 2, 400), rng.normal(10.4, 3, 300)
    res = st.compare(st.summarize("c", c), st.summarize("t", t), "mean")
    cm = CompareMeans(DescrStatsW(t), DescrStatsW(c))
    _, p, _ = cm.ttest_ind(usevar="unequal")
    low, high = cm.tconfint_diff(usevar="unequal")
    assert res.p_value == pytest.approx(p, rel=1e-9)
    assert (res.ci_low, res.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert res.diff == pytest.approx(t.mean() - c.mean())
    assert res.lift_ci_low < res.lift < res.lift_ci_high


def test_proportion_interval_excludes_zero_exactly_when_significant():
    for k_t in range(80, 160, 7):
        c = st.summarize("c", np.r_[np.ones(100), np.zeros(900)], metric_kind="proportion")
        t = st.summarize("t", np.r_[np.ones(k_t), np.zeros(1000 - k_t)], metric_kind="proportion")
        res = st.compare(c, t, "proportion")
        assert res.significant == (res.ci_low > 0 or res.ci_high < 0)
        assert res.lift == pytest.approx(k_t / 100 - 1)
        assert res.lift_ci_low < res.lift < res.lift_ci_high


def test_summary_counts_users_exposures_and_interval():
    s = st.summarize("a", [0, 1, 1, 0, 1], exposures=12, metric_kind="proportion")
    assert (s.users, s.exposures, s.mean) == (5, 12, pytest.approx(0.6))
    assert s.ci_low < 0.6 < s.ci_high
    with pytest.raises(ValueError):
        st.summarize("a", [1.0])


def test_z_statistic_is_statsmodels_wald_statistic():
    res = smprop.test_proportions_2indep(130, 1000, 100, 1000, method="wald", compare="diff")
    z = st.z_statistic(0.13, 0.13 * 0.87, 1000, 0.10, 0.10 * 0.90, 1000)
    assert float(z) == pytest.approx(res.statistic, rel=1e-9)


def test_srm_flags_a_broken_split_and_passes_a_sound_one():
    assert st.srm([10400, 9600], [0.5, 0.5]).blocking
    sound = st.srm([10030, 9970], [0.5, 0.5])
    assert not sound.blocking and sound.p_value > 0.5
    assert not st.srm([2010, 990, 1000], [2, 1, 1]).blocking
    with pytest.raises(ValueError):
        st.srm([1, 2], [1.0])


def test_cuped_recovers_theta_and_reports_variance_reduction():
    rng = _rng(1)
    x = rng.normal(0, 1, 5000)
    y = 2.0 * x + rng.normal(0, 1, 5000)
    res = st.cuped(y, x)
    assert res.theta == pytest.approx(2.0, abs=0.05)
    assert res.variance_reduction == pytest.approx(0.8, abs=0.02)  # rho^2 = 4 / 5
    assert res.adjusted.mean() == pytest.approx(y.mean())
    flat = st.cuped(y, np.ones_like(y))
    assert flat.theta == 0.0 and flat.variance_reduction == pytest.approx(0.0)


def test_required_sample_size_matches_the_textbook_figure():
    # 10% -> 11% at alpha 0.05, power 0.8: about 14,750 per arm (Cohen's h).
    assert st.required_sample_size(0.10, 0.10) == pytest.approx(14745, abs=10)
    # A mean with d = 0.2 needs 394 per arm (t-test).
    assert st.required_sample_size(10.0, 0.1, std=5.0) == 394


def test_spending_bounds_match_the_published_lan_demets_table():
    # Jennison & Turnbull (2000) / gsDesign sfLDOF: 5 equal looks, two-sided alpha 0.05.
    bounds = st.spending_bounds(np.arange(1, 6) / 5)
    assert bounds == pytest.approx([4.877, 3.357, 2.680, 2.290, 2.031], abs=2e-3)
    assert st.spending_bounds([1.0]) == pytest.approx([1.95996], abs=1e-4)
    assert float(st.obf_spending(1.0)) == pytest.approx(0.05)
    # Boundaries depend only on past looks: tomorrow's look leaves today's bounds alone.
    assert st.spending_bounds([0.2, 0.4])[0] == pytest.approx(bounds[0])


def test_sequential_test_reports_the_first_crossing():
    res = st.sequential_test([[0.5, 3.5, 1.0], [1.0, 1.0, 1.0]], [1 / 3, 2 / 3, 1.0])
    assert res.rejected.tolist() == [True, False]
    assert res.first_look.tolist() == [1, -1]
    with pytest.raises(ValueError):
        st.sequential_test([1.0, 2.0], [0.5, 0.4])


def _roundtrip(policy):
    return type(policy).from_dict(json.loads(json.dumps(policy.to_dict())))


def test_thompson_state_roundtrips_and_propensity_is_a_probability():
    ts = bandits.ThompsonBernoulli(3, propensity_draws=500)
    for arm, reward in [(0, 1), (0, 1), (1, 0), (2, 0), (0, 1)]:
        ts.update(arm, reward)
    copy = _roundtrip(ts)
    assert copy.choose(None, _rng(3)) == ts.choose(None, _rng(3))
    arm, p = ts.choose(None, _rng(4))
    assert 0 < p <= 1
    probs = ts.propensities(_rng(5))
    assert probs.sum() == pytest.approx(1.0) and probs.argmax() == 0
    with pytest.raises(ValueError):
        bandits.EpsilonGreedy.from_dict(ts.to_dict())


def test_epsilon_greedy_propensity_is_exact():
    eg = bandits.EpsilonGreedy(4, epsilon=0.2)
    for arm, reward in [(0, 0.1), (1, 0.9), (2, 0.2), (3, 0.3)]:
        eg.update(arm, reward)
    rng = _rng(6)
    seen = {eg.choose(None, rng) for _ in range(200)}
    assert {a for a, _ in seen} == {0, 1, 2, 3}
    assert all(p == pytest.approx(0.85 if a == 1 else 0.05) for a, p in seen)
    assert _roundtrip(eg).to_dict() == eg.to_dict()


def test_linucb_learns_the_segments_best_arm_and_roundtrips():
    rng = _rng(7)
    lin = bandits.LinUCB(2, 5, alpha=0.3, epsilon=0.1)
    for _ in range(600):
        seg = int(rng.integers(2))
        x = bandits.segment_hour_features(seg, float(rng.uniform(0, 24)), 2)
        arm, p = lin.choose(x, rng)
        # greedy 0.9 + 0.1 / 2, explored 0.1 / 2, or a tie (before any data): 0.45 + 0.05
        assert min(abs(p - q) for q in (0.95, 0.05, 0.5)) < 1e-12
        lin.update(arm, float(rng.random() < (0.8 if arm == seg else 0.1)), x)
    for seg in (0, 1):
        x = bandits.segment_hour_features(seg, 12.0, 2)
        assert int(np.argmax(lin.scores(x))) == seg
    copy = _roundtrip(lin)
    x = bandits.segment_hour_features(1, 3.0, 2)
    assert copy.scores(x) == pytest.approx(lin.scores(x))


def test_hour_features_wrap_around_midnight():
    late, early = (bandits.segment_hour_features(0, h, 2) for h in (23.9, 0.1))
    assert np.abs(late - early).max() < 0.1


def test_ips_equals_the_mean_reward_when_target_is_logging_policy():
    rng = _rng(8)
    r = (rng.random(1000) < 0.3).astype(float)
    p = np.full(1000, 0.25)
    est = ope.ips(r, p, p)
    assert est.value == pytest.approx(r.mean())
    assert est.ess == pytest.approx(1000)
    assert est.covers(r.mean())
    assert ope.snips(r, p, p).value == pytest.approx(r.mean())


def test_doubly_robust_with_a_perfect_model_has_no_weight_noise():
    rng = _rng(9)
    n = 2000
    r = np.full(n, 0.4)
    p = rng.uniform(0.2, 0.8, n)
    pi = rng.uniform(0, 1, n)
    est = ope.doubly_robust(r, p, pi, np.full(n, 0.4), np.full(n, 0.4))
    assert est.value == pytest.approx(0.4)
    assert est.ci_high - est.ci_low == pytest.approx(0.0, abs=1e-12)
    assert est.ess < n


def test_ope_rejects_impossible_propensities():
    with pytest.raises(ValueError):
        ope.ips([1.0, 0.0], [0.0, 0.5], [0.5, 0.5])
    with pytest.raises(ValueError):
        ope.snips([1.0, 0.0], [0.5, 0.5], [0.0, 0.0])
