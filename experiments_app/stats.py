"""The statistics of an A/B test: per-variant summaries, comparisons, SRM, CUPED, sequential
testing and sample sizes (issue 12). Pure functions over numpy arrays; no Django, no I/O.

Where a well-kept library provides the test, it is used: Welch's t-test from
``scipy.stats.ttest_ind_from_stats``; the two-proportion Wald test, its interval and the
ratio interval from ``statsmodels.stats.proportion``; single-variant intervals from
``statsmodels`` (``DescrStatsW``, ``proportion_confint``); the SRM chi-square from
``scipy.stats.chisquare``; sample sizes from ``statsmodels.stats.power``.

Relative lift (treatment / control - 1) gets its interval by the **delta method on the log
ratio**: for proportions that is statsmodels' ``compare="ratio", method="log"`` (Katz); for
means statsmodels has no ratio interval, so the same delta-method formula is written here
(``se(log r)^2 = s_t^2/(n_t m_t^2) + s_c^2/(n_c m_c^2)``). It needs both means > 0.

Sequential testing: a **Lan-DeMets alpha-spending boundary with the O'Brien-Fleming-type
spending function** (Lan & DeMets 1983, Biometrika 70:659), boundaries found by the
recursive numerical integration of Armitage, McPherson & Rowe (1969) / Jennison & Turnbull
(2000, ch. 19). statsmodels has no group-sequential design, so the spending function and
the recursion are written here with ``scipy.stats.norm``. Chosen over mSPRT always-valid
p-values (Johari et al. 2017) because experiments here have a planned size
(``required_sample_size``): the spending boundary spends the whole alpha by the planned end,
so its type-I error is the nominal 5% under daily looks, where mSPRT with a finite horizon
is conservative (well under 5%) and loses power; the flexible Lan-DeMets timing still lets
the analyst look on any day, as often as they like, without planning the looks ahead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize
from scipy import stats as sps
from statsmodels.stats import power as smp
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportion_effectsize,
    test_proportions_2indep,
)
from statsmodels.stats.weightstats import DescrStatsW

MetricKind = Literal["mean", "proportion"]
SRM_BLOCKING_P = 0.001


@dataclass(frozen=True)
class VariantSummary:
    """One variant's metric: users (the unit of analysis), exposures, mean, sample std and
    the mean's confidence interval."""

    name: str
    users: int
    exposures: int
    mean: float
    std: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class Comparison:
    """Treatment against control: absolute difference with its interval, relative lift with
    its interval (delta method on the log ratio), two-sided p-value."""

    diff: float
    ci_low: float
    ci_high: float
    lift: float
    lift_ci_low: float
    lift_ci_high: float
    p_value: float
    alpha: float

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio-mismatch check: chi-square statistic and p-value; ``blocking`` when
    p < 0.001 (the conventional threshold: the split is broken, the results are not read)."""

    statistic: float
    p_value: float
    blocking: bool


@dataclass(frozen=True)
class CupedResult:
    """CUPED (Deng et al. 2013): ``adjusted = y - theta * (x_pre - mean(x_pre))``; the
    adjusted mean is unbiased under randomisation; ``variance_reduction`` is
    ``1 - var(adjusted) / var(y)`` (about corr(y, x_pre)^2)."""

    adjusted: NDArray[np.float64]
    theta: float
    variance_reduction: float


@dataclass(frozen=True)
class SequentialResult:
    """A group-sequential test over looks: the z boundaries, whether each path crossed, and
    the first look (0-based) that crossed, -1 where none did."""

    bounds: NDArray[np.float64]
    rejected: NDArray[np.bool_]
    first_look: NDArray[np.int64]


def summarize(
    name: str,
    values: ArrayLike,
    *,
    exposures: int | None = None,
    metric_kind: MetricKind = "mean",
    alpha: float = 0.05,
) -> VariantSummary:
    """Summarise one variant from per-user values (0/1 for a proportion)."""
    y = np.asarray(values, dtype=float)
    n = int(y.size)
    if n < 2:
        raise ValueError("a variant needs at least two users")
    mean = float(y.mean())
    std = float(y.std(ddof=1))
    if metric_kind == "proportion":
        low, high = proportion_confint(round(y.sum()), n, alpha=alpha, method="wilson")
    else:
        low, high = DescrStatsW(y).tconfint_mean(alpha=alpha)
    return VariantSummary(
        name=name,
        users=n,
        exposures=n if exposures is None else int(exposures),
        mean=mean,
        std=std,
        ci_low=float(low),
        ci_high=float(high),
    )


def compare(
    control: VariantSummary,
    treatment: VariantSummary,
    metric_kind: MetricKind = "mean",
    *,
    alpha: float = 0.05,
) -> Comparison:
    """Treatment minus control. ``mean``: Welch's t-test (scipy) and its Welch-Satterthwaite
    interval. ``proportion``: statsmodels' two-proportion Wald test and Wald interval (the
    same variance for both, so the interval excludes 0 exactly when p < alpha)."""
    n_c, n_t = control.users, treatment.users
    m_c, m_t = control.mean, treatment.mean
    diff = m_t - m_c
    if metric_kind == "proportion":
        k_t, k_c = round(m_t * n_t), round(m_c * n_c)
        res = test_proportions_2indep(k_t, n_t, k_c, n_c, method="wald", compare="diff")
        low, high = confint_proportions_2indep(
            k_t, n_t, k_c, n_c, method="wald", compare="diff", alpha=alpha
        )
        p_value = float(res.pvalue)
        if k_t > 0 and k_c > 0:
            r_low, r_high = confint_proportions_2indep(
                k_t, n_t, k_c, n_c, method="log", compare="ratio", alpha=alpha
            )
            lift_low, lift_high = float(r_low) - 1.0, float(r_high) - 1.0
        else:
            lift_low = lift_high = math.nan
    else:
        var_c, var_t = control.std**2 / n_c, treatment.std**2 / n_t
        se = math.sqrt(var_c + var_t)
        res_t = sps.ttest_ind_from_stats(
            m_t, treatment.std, n_t, m_c, control.std, n_c, equal_var=False
        )
        p_value = float(res_t.pvalue)
        dof = (var_c + var_t) ** 2 / (var_c**2 / (n_c - 1) + var_t**2 / (n_t - 1))
        low, high = sps.t.interval(1 - alpha, dof, loc=diff, scale=se)
        if m_c > 0 and m_t > 0:
            se_log = math.sqrt(var_t / m_t**2 + var_c / m_c**2)
            z = float(sps.norm.isf(alpha / 2))
            log_r = math.log(m_t / m_c)
            lift_low = math.exp(log_r - z * se_log) - 1.0
            lift_high = math.exp(log_r + z * se_log) - 1.0
        else:
            lift_low = lift_high = math.nan
    lift = m_t / m_c - 1.0 if m_c != 0 else math.nan
    return Comparison(
        diff=float(diff),
        ci_low=float(low),
        ci_high=float(high),
        lift=float(lift),
        lift_ci_low=float(lift_low),
        lift_ci_high=float(lift_high),
        p_value=p_value,
        alpha=alpha,
    )


def z_statistic(
    mean_t: ArrayLike,
    var_t: ArrayLike,
    n_t: ArrayLike,
    mean_c: ArrayLike,
    var_c: ArrayLike,
    n_c: ArrayLike,
) -> NDArray[np.float64]:
    """Vectorised large-sample z of the difference in means (unpooled variances), the
    statistic a sequential boundary is applied to at each look. For a proportion pass
    ``var = p (1 - p)``; it is then statsmodels' Wald statistic (checked in the tests)."""
    mt, mc = np.asarray(mean_t, dtype=float), np.asarray(mean_c, dtype=float)
    se = np.sqrt(np.asarray(var_t, dtype=float) / n_t + np.asarray(var_c, dtype=float) / n_c)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (mt - mc) / se, 0.0)
    return np.asarray(z, dtype=float)


def srm(observed_counts: ArrayLike, expected_weights: ArrayLike) -> SrmResult:
    """Chi-square goodness of fit of the users per variant against the designed split."""
    observed = np.asarray(observed_counts, dtype=float)
    weights = np.asarray(expected_weights, dtype=float)
    if observed.shape != weights.shape or observed.size < 2:
        raise ValueError("one count and one weight per variant, at least two variants")
    expected = observed.sum() * weights / weights.sum()
    res = sps.chisquare(observed, f_exp=expected)
    p_value = float(res.pvalue)
    return SrmResult(
        statistic=float(res.statistic), p_value=p_value, blocking=p_value < SRM_BLOCKING_P
    )


def cuped(y: ArrayLike, x_pre: ArrayLike) -> CupedResult:
    """CUPED over all users of the experiment pooled (theta must not depend on the
    variant): theta = cov(y, x_pre) / var(x_pre). Split ``adjusted`` by variant afterwards
    and summarise it like any mean metric."""
    yv = np.asarray(y, dtype=float)
    xv = np.asarray(x_pre, dtype=float)
    if yv.shape != xv.shape:
        raise ValueError("y and x_pre need one value per user")
    var_x = float(np.var(xv, ddof=1))
    theta = float(np.cov(yv, xv, ddof=1)[0, 1] / var_x) if var_x > 0 else 0.0
    adjusted = yv - theta * (xv - xv.mean())
    var_y = float(np.var(yv, ddof=1))
    reduction = 1.0 - float(np.var(adjusted, ddof=1)) / var_y if var_y > 0 else 0.0
    return CupedResult(adjusted=adjusted, theta=theta, variance_reduction=reduction)


def required_sample_size(
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    std: float | None = None,
) -> int:
    """Users per arm (two arms, equal split, two-sided) to detect a relative lift ``mde``
    over ``baseline``. Without ``std`` the metric is a proportion (Cohen's h,
    ``NormalIndPower``); with ``std`` a mean (Cohen's d, ``TTestIndPower``)."""
    if mde == 0:
        raise ValueError("mde must be non-zero")
    if std is None:
        effect = abs(float(proportion_effectsize(baseline * (1 + mde), baseline)))
        n = smp.NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power)
    else:
        effect = abs(baseline * mde / std)
        n = smp.TTestIndPower().solve_power(effect_size=effect, alpha=alpha, power=power)
    return math.ceil(float(n))


# --- sequential testing: Lan-DeMets O'Brien-Fleming-type alpha spending --------------------

_MAX_Z = 8.0  # P(|Z| > 8) ~ 1e-15: a look that may spend nothing gets this bound
_GRID = 801  # Simpson grid points per look (odd)


def obf_spending(t: ArrayLike, alpha: float = 0.05) -> NDArray[np.float64]:
    """Cumulative two-sided alpha spent by information fraction t: the O'Brien-Fleming-type
    function applied to each side's alpha/2, ``2 * (2 - 2 Phi(z_{1-alpha/4} / sqrt t))``, as
    gsDesign (``sfLDOF``), ldbounds and EAST do; K=5 equal looks give 4.877 ... 2.031."""
    tt = np.clip(np.asarray(t, dtype=float), 1e-12, 1.0)
    return np.asarray(4.0 * sps.norm.sf(sps.norm.isf(alpha / 4) / np.sqrt(tt)), dtype=float)


def _simpson_weights(m: int, h: float) -> NDArray[np.float64]:
    w = np.ones(m)
    w[1:-1:2] = 4.0
    w[2:-1:2] = 2.0
    return np.asarray(w * h / 3.0, dtype=float)


def _crossing(
    c: float, sqrt_t: float, sd: float, x: NDArray[np.float64], f: NDArray[np.float64]
) -> float:
    """P(not stopped before, |Z_k| >= c): the weighted sub-density ``f`` on grid ``x``
    carried over one increment of standard deviation ``sd``."""
    bk = c * sqrt_t
    tail = sps.norm.sf((bk - x) / sd) + sps.norm.cdf((-bk - x) / sd)
    return float(np.dot(f, tail))


def spending_bounds(info_fractions: ArrayLike, alpha: float = 0.05) -> NDArray[np.float64]:
    """Two-sided z boundaries at the given cumulative information fractions (increasing,
    in (0, 1]; a fraction above 1 is read as 1). Each boundary depends only on the looks up
    to it, so the analyst can pass the fractions seen so far and look again tomorrow."""
    t = np.minimum(np.asarray(info_fractions, dtype=float), 1.0)
    if t.ndim != 1 or t.size == 0 or t[0] <= 0 or np.any(np.diff(t) < 0):
        raise ValueError("info_fractions must be increasing and positive")
    spent = obf_spending(t, alpha)
    increments = np.diff(np.concatenate([[0.0], spent]))
    bounds = np.empty(t.size)
    bounds[0] = min(_MAX_Z, float(sps.norm.isf(max(increments[0], 1e-300) / 2)))
    # Sub-density of B(t) = Z sqrt(t) on the continuation region, on a Simpson grid.
    b = bounds[0] * math.sqrt(t[0])
    x = np.linspace(-b, b, _GRID)
    f = sps.norm.pdf(x, scale=math.sqrt(t[0])) * _simpson_weights(_GRID, x[1] - x[0])
    for k in range(1, t.size):
        delta = t[k] - t[k - 1]
        if delta <= 0:  # a repeated look at the same information spends nothing new
            bounds[k] = bounds[k - 1]
            continue
        sd = math.sqrt(delta)
        sqrt_t = math.sqrt(t[k])
        target = increments[k]
        if _crossing(_MAX_Z, sqrt_t, sd, x, f) >= target:
            bounds[k] = _MAX_Z
        else:
            bounds[k] = optimize.brentq(
                lambda c, tg, *a: _crossing(c, *a) - tg,
                1e-6,
                _MAX_Z,
                args=(target, sqrt_t, sd, x, f),
                xtol=1e-8,
            )
        b = bounds[k] * sqrt_t
        y = np.linspace(-b, b, _GRID)
        kernel = sps.norm.pdf((y[:, None] - x[None, :]) / sd) / sd
        f = (kernel @ f) * _simpson_weights(_GRID, y[1] - y[0])
        x = y
    return bounds


def sequential_test(
    z_path: ArrayLike, info_fractions: ArrayLike, alpha: float = 0.05
) -> SequentialResult:
    """Apply the spending boundary to z statistics, one per look (shape ``(looks,)`` or
    ``(paths, looks)``). A path is rejected at the first look where |z| reaches its bound;
    stopping there keeps the type-I error at ``alpha`` however many looks were taken."""
    z = np.atleast_2d(np.asarray(z_path, dtype=float))
    bounds = spending_bounds(info_fractions, alpha)
    if z.shape[-1] != bounds.size:
        raise ValueError("one z per look")
    crossed = np.abs(z) >= bounds[None, :]
    rejected = crossed.any(axis=1)
    first = np.where(rejected, crossed.argmax(axis=1), -1).astype(np.int64)
    return SequentialResult(bounds=bounds, rejected=rejected, first_look=first)
