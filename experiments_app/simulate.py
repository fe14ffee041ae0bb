"""Simulations with known ground truth that show the statistics are right (issue 12).

``python -m experiments_app.simulate`` prints every figure; ``tests/experiments/
test_simulations.py`` runs the same functions with the same seeds and asserts the bounds.
Each function is vectorised numpy where the statistic allows it, and calls the production
functions (``compare``, ``srm``, ``cuped``, ``sequential_test``, the bandit classes, the OPE
estimators) on every simulated experiment.
"""

from __future__ import annotations

import numpy as np

from experiments_app import bandits, ope
from experiments_app import stats as st

ALPHA = 0.05


def _summary(name: str, values: np.ndarray, kind: st.MetricKind) -> st.VariantSummary:
    return st.summarize(name, values, metric_kind=kind)


def aa_fixed_horizon(n_sims: int = 500, n_per_arm: int = 1000, seed: int = 1) -> dict[str, float]:
    """A/A false-positive rate of ``compare`` at one final look, a conversion (p = 0.1) and
    a skewed revenue-like mean metric (lognormal)."""
    rng = np.random.default_rng(seed)
    hits = {"proportion": 0, "mean": 0}
    for _ in range(n_sims):
        conv = rng.random((2, n_per_arm)) < 0.1
        rev = rng.lognormal(0.0, 1.0, size=(2, n_per_arm))
        cases: tuple[tuple[st.MetricKind, np.ndarray], ...] = (
            ("proportion", conv.astype(float)),
            ("mean", rev),
        )
        for kind, data in cases:
            res = st.compare(_summary("c", data[0], kind), _summary("t", data[1], kind), kind)
            hits[kind] += res.p_value < ALPHA
    return {f"fpr_{k}": v / n_sims for k, v in hits.items()}


def aa_daily_peeking(
    n_sims: int = 2000, days: int = 14, users_per_day: int = 300, seed: int = 2
) -> dict[str, float]:
    """A/A with an analyst who looks every day: a naive test at 1.96 each day against the
    O'Brien-Fleming-type spending boundary; a conversion and a lognormal mean."""
    rng = np.random.default_rng(seed)
    n = users_per_day * np.arange(1, days + 1)
    fractions = np.arange(1, days + 1) / days
    out: dict[str, float] = {}
    conv = rng.binomial(users_per_day, 0.1, size=(n_sims, 2, days)).cumsum(axis=2) / n
    var = conv * (1 - conv)
    z_conv = st.z_statistic(conv[:, 1], var[:, 1], n, conv[:, 0], var[:, 0], n)
    vals = rng.lognormal(0.0, 1.0, size=(n_sims, 2, days, users_per_day))
    sums, squares = vals.sum(axis=3).cumsum(axis=2), (vals**2).sum(axis=3).cumsum(axis=2)
    mean = sums / n
    svar = (squares - n * mean**2) / (n - 1)
    z_mean = st.z_statistic(mean[:, 1], svar[:, 1], n, mean[:, 0], svar[:, 0], n)
    for kind, z in (("proportion", z_conv), ("mean", z_mean)):
        out[f"fpr_naive_peeking_{kind}"] = float(np.mean((np.abs(z) >= 1.96).any(axis=1)))
        seq = st.sequential_test(z, fractions, ALPHA)
        out[f"fpr_sequential_{kind}"] = float(seq.rejected.mean())
    return out


def power_check(
    n_sims: int = 1000, baseline: float = 0.10, mde: float = 0.10, seed: int = 3
) -> dict[str, float]:
    """Detection rate of a true relative lift ``mde`` at the size ``required_sample_size``
    promises 80% power for; also the spending boundary's power at that size, 14 looks."""
    n = st.required_sample_size(baseline, mde, ALPHA, 0.8)
    rng = np.random.default_rng(seed)
    k_c = rng.binomial(n, baseline, size=n_sims)
    k_t = rng.binomial(n, baseline * (1 + mde), size=n_sims)
    hits = 0
    for kc, kt in zip(k_c, k_t, strict=True):
        c = st.VariantSummary("c", n, n, kc / n, 0.0, 0.0, 0.0)
        t = st.VariantSummary("t", n, n, kt / n, 0.0, 0.0, 0.0)
        hits += st.compare(c, t, "proportion").p_value < ALPHA
    days = 14
    per_day = int(np.ceil(n / days))
    nn = per_day * np.arange(1, days + 1)
    pc = rng.binomial(per_day, baseline, size=(n_sims, days)).cumsum(axis=1) / nn
    pt = rng.binomial(per_day, baseline * (1 + mde), size=(n_sims, days)).cumsum(axis=1) / nn
    z = st.z_statistic(pt, pt * (1 - pt), nn, pc, pc * (1 - pc), nn)
    seq = st.sequential_test(z, np.arange(1, days + 1) / days, ALPHA)
    return {
        "n_per_arm": float(n),
        "power_fixed": hits / n_sims,
        "power_sequential_14_looks": float(seq.rejected.mean()),
    }


def srm_check(n_sims: int = 500, users: int = 20000, seed: int = 4) -> dict[str, float]:
    """Blocking rate of ``srm`` on a broken 52/48 split, and on a sound 50/50 one."""
    rng = np.random.default_rng(seed)
    out = {}
    for label, share in (("broken_52_48", 0.52), ("sound_50_50", 0.50)):
        first = rng.binomial(users, share, size=n_sims)
        flagged = sum(st.srm([a, users - a], [0.5, 0.5]).blocking for a in first)
        out[f"srm_blocking_rate_{label}"] = flagged / n_sims
    return out


def cuped_check(
    n_sims: int = 500, n_per_arm: int = 1000, rho: float = 0.7, seed: int = 5
) -> dict[str, float]:
    """A/A on a metric correlated (rho) with its pre-period value: CUPED's variance
    reduction, the ratio of interval widths (CUPED / raw), and the A/A false-positive rate
    with CUPED (it must stay nominal)."""
    rng = np.random.default_rng(seed)
    reductions, ratios, hits = [], [], 0
    for _ in range(n_sims):
        x = rng.normal(10.0, 3.0, size=2 * n_per_arm)
        noise = rng.normal(0.0, 3.0, size=2 * n_per_arm)
        y = 10.0 + rho * (x - 10.0) + np.sqrt(1 - rho**2) * noise
        res = st.cuped(y, x)
        raw = st.compare(_summary("c", y[:n_per_arm], "mean"), _summary("t", y[n_per_arm:], "mean"))
        adj = res.adjusted
        cup = st.compare(
            _summary("c", adj[:n_per_arm], "mean"), _summary("t", adj[n_per_arm:], "mean")
        )
        reductions.append(res.variance_reduction)
        ratios.append((cup.ci_high - cup.ci_low) / (raw.ci_high - raw.ci_low))
        hits += cup.p_value < ALPHA
    return {
        "cuped_variance_reduction": float(np.mean(reductions)),
        "cuped_ci_width_ratio": float(np.mean(ratios)),
        "cuped_fpr": hits / n_sims,
    }


def bandit_regret(reps: int = 20, horizon: int = 2000, seed: int = 6) -> dict[str, float]:
    """Mean cumulative pseudo-regret (sum of the chosen arm's gap) on a Bernoulli bandit."""
    probs = np.array([0.10, 0.15, 0.20, 0.30])
    gaps = probs.max() - probs
    rng = np.random.default_rng(seed)
    totals = {"thompson": 0.0, "epsilon_greedy": 0.0, "uniform": 0.0}
    for _ in range(reps):
        policies: dict[str, bandits.ThompsonBernoulli | bandits.EpsilonGreedy] = {
            "thompson": bandits.ThompsonBernoulli(probs.size, propensity_draws=32),
            "epsilon_greedy": bandits.EpsilonGreedy(probs.size, epsilon=0.1),
        }
        for name, policy in policies.items():
            for _ in range(horizon):
                arm, _p = policy.choose(None, rng)
                policy.update(arm, float(rng.random() < probs[arm]))
                totals[name] += gaps[arm]
        totals["uniform"] += float(gaps[rng.integers(probs.size, size=horizon)].sum())
    return {f"regret_{k}": float(v) / reps for k, v in totals.items()}


def linucb_regret(reps: int = 5, horizon: int = 1500, seed: int = 7) -> dict[str, float]:
    """Contextual bandit where the best arm depends on the segment: LinUCB against uniform
    and context-free Thompson sampling."""
    table = np.array([[0.30, 0.10, 0.10], [0.10, 0.30, 0.10], [0.10, 0.10, 0.30]])
    gaps = table.max(axis=1, keepdims=True) - table
    rng = np.random.default_rng(seed)
    totals = {"linucb": 0.0, "thompson": 0.0, "uniform": 0.0}
    for _ in range(reps):
        lin = bandits.LinUCB(3, 6, alpha=0.5, epsilon=0.05)
        ts = bandits.ThompsonBernoulli(3, propensity_draws=32)
        for _ in range(horizon):
            seg, hour = int(rng.integers(3)), float(rng.uniform(0, 24))
            x = bandits.segment_hour_features(seg, hour, 3)
            for name, policy in (("linucb", lin), ("thompson", ts)):
                arm, _p = policy.choose(x, rng)
                policy.update(arm, float(rng.random() < table[seg, arm]), x)
                totals[name] += gaps[seg, arm]
            totals["uniform"] += gaps[seg, rng.integers(3)]
    return {f"contextual_regret_{k}": float(v) / reps for k, v in totals.items()}


def ope_coverage(n_sims: int = 500, n: int = 3000, seed: int = 8) -> dict[str, float]:
    """Coverage of IPS, SNIPS and DR intervals for a known target policy's value, logs from
    a different (known) logging policy; DR's reward model is deliberately biased."""
    rng = np.random.default_rng(seed)
    reward = np.array([[0.30, 0.10, 0.05], [0.05, 0.25, 0.10], [0.10, 0.05, 0.40]])
    seg_p = np.array([0.5, 0.3, 0.2])
    logging = np.array([[0.4, 0.3, 0.3], [0.3, 0.4, 0.3], [0.3, 0.3, 0.4]])
    target = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    truth = float(seg_p @ (target * reward).sum(axis=1))
    model = np.clip(reward + 0.05, 0, 1)  # a biased reward model
    covered = {"ips": 0, "snips": 0, "doubly_robust": 0}
    ess = []
    for _ in range(n_sims):
        seg = rng.choice(3, size=n, p=seg_p)
        u = rng.random(n)[:, None]
        arm = (u > logging[seg].cumsum(axis=1)).sum(axis=1)
        r = (rng.random(n) < reward[seg, arm]).astype(float)
        p, pi = logging[seg, arm], target[seg, arm]
        q, v = model[seg, arm], (target[seg] * model[seg]).sum(axis=1)
        results = [ope.ips(r, p, pi), ope.snips(r, p, pi), ope.doubly_robust(r, p, pi, q, v)]
        for res in results:
            covered[res.estimator] += res.covers(truth)
        ess.append(results[0].ess / n)
    out = {f"ope_coverage_{k}": v / n_sims for k, v in covered.items()}
    out["ope_ess_share"] = float(np.mean(ess))
    return out


def main() -> None:
    """Print every figure (seeds fixed; minutes at most on one core)."""
    for fn in (
        aa_fixed_horizon,
        aa_daily_peeking,
        power_check,
        srm_check,
        cuped_check,
        bandit_regret,
        linucb_regret,
        ope_coverage,
    ):
        for key, value in fn().items():
            print(f"{fn.__name__:18s} {key:34s} {value:10.4f}")


if __name__ == "__main__":
    main()
