"""The statistics of one metric per variant, from :mod:`experiments_app.services.metrics`'
per-user data: summaries, comparisons with control, CUPED, the sequential look and the
latency guardrail. No database access; JSON-ready dicts out (NaN becomes None).

* **Means** (``count``, ``mean`` kinds): per-user values through ``stats.summarize`` and
  ``stats.compare`` (Welch; relative lift by the delta method on the log ratio).
* **Ratios** (``ratio`` kind, e.g. clicks / impressions): the ratio of sums per variant, its
  variance by the **delta method** over users (Deng et al. 2018): ``var(R) = (s_Y^2 - 2 R
  s_XY + R^2 s_X^2) / (n mean(X)^2)``; a z test of the difference, and the relative lift's
  interval on the log ratio. Never a mean of per-user ratios.
* **CUPED** (``stats.cuped``, one theta pooled over the arms): for means the covariate is
  the same metric in the pre-period (users without one get the pooled pre-period mean); for
  ratios both periods are first linearised, ``L = (Y - R X) / mean(X)`` with the pooled R, so
  the adjusted difference estimates the difference of the ratios.
* **Latency p95**: the relative change of the treatment's p95 over control's with a
  percentile bootstrap interval (``scipy.stats.bootstrap``, requests resampled, seeded,
  at most ``LATENCY_MAX_SAMPLES`` per arm), and a Mann-Whitney U p-value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

from experiments_app import stats
from experiments_app.services.metrics import MetricData

ALPHA = 0.05
LATENCY_MAX_SAMPLES = 5000
LATENCY_RESAMPLES = 1000
_Z = float(sps.norm.isf(ALPHA / 2))
_COMPARISON_FIELDS = ("diff", "ci_low", "ci_high", "lift", "lift_ci_low", "lift_ci_high", "p_value")


def clean(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


def per_user_values(
    data: MetricData, num: NDArray[np.float64], den: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """(y, x, included): the per-user values a metric is analysed on. ``ratio``: y=num,
    x=den, everyone; ``count``: y=num, everyone; ``mean``: y=num/den where den > 0."""
    if data.kind == "mean":
        included = den > 0
        y = np.divide(num, den, out=np.zeros_like(num), where=included)
        return y, np.ones_like(y), included
    return num, den, np.ones(num.shape, dtype=bool)


# --- ratio metrics: the delta method ------------------------------------------------------


def _ratio(y: NDArray[np.float64], x: NDArray[np.float64]) -> tuple[float, float, int]:
    """(ratio of sums, its delta-method variance, users)."""
    n = int(y.size)
    if n == 0 or x.sum() <= 0:
        return math.nan, math.nan, n
    mx, my = float(x.mean()), float(y.mean())
    r = my / mx
    if n < 2:
        return r, math.nan, n
    cov = np.cov(y, x, ddof=1)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (n * mx * mx)
    return r, max(float(var), 0.0), n


def _summary(mean: float, se: float, users: int) -> dict[str, Any]:
    return {
        "users": users,
        "mean": mean,
        "ci_low": mean - _Z * se,
        "ci_high": mean + _Z * se,
    }


def _ratio_compare(
    rc: float, vc: float, rt: float, vt: float, *, alpha: float = ALPHA
) -> dict[str, Any]:
    diff = rt - rc
    se = math.sqrt(vc + vt) if math.isfinite(vc + vt) else math.nan
    z = diff / se if se > 0 else 0.0
    p = float(2 * sps.norm.sf(abs(z))) if se > 0 else 1.0
    lift = rt / rc - 1 if rc > 0 else math.nan
    if rc > 0 and rt > 0:
        se_log = math.sqrt(vt / rt**2 + vc / rc**2)
        lift_low = math.exp(math.log(rt / rc) - _Z * se_log) - 1
        lift_high = math.exp(math.log(rt / rc) + _Z * se_log) - 1
    else:
        lift_low = lift_high = math.nan
    return {
        "diff": diff,
        "ci_low": diff - _Z * se,
        "ci_high": diff + _Z * se,
        "lift": lift,
        "lift_ci_low": lift_low,
        "lift_ci_high": lift_high,
        "p_value": p,
        "z": z,
        "significant": p < alpha,
    }


def _mean_compare(c: stats.VariantSummary, t: stats.VariantSummary) -> dict[str, Any]:
    cmp = stats.compare(c, t, "mean", alpha=ALPHA)
    var_c, var_t = c.std**2 / c.users, t.std**2 / t.users
    se = math.sqrt(var_c + var_t)
    return {
        "diff": cmp.diff,
        "ci_low": cmp.ci_low,
        "ci_high": cmp.ci_high,
        "lift": cmp.lift,
        "lift_ci_low": cmp.lift_ci_low,
        "lift_ci_high": cmp.lift_ci_high,
        "p_value": cmp.p_value,
        "z": float(stats.z_statistic(t.mean, t.std**2, t.users, c.mean, c.std**2, c.users))
        if se > 0
        else 0.0,
        "significant": cmp.significant,
    }


def analyse(
    data: MetricData,
    variant_ids: NDArray[np.int64],
    arms: list[tuple[int, str]],
    *,
    day: int | None = None,
    present: NDArray[np.bool_] | None = None,
) -> dict[str, Any]:
    """Summaries per arm (``arms``: (variant id, key), control first) and each treatment's
    comparison with control, on the data up to ``day`` (all by default) of the users in
    ``present`` (all by default)."""
    num, den = data.upto(day if day is not None else data.num.shape[1])
    y, x, included = per_user_values(data, num, den)
    if present is not None:
        included = included & present
    summaries: list[dict[str, Any]] = []
    raw: dict[str, Any] = {}
    for vid, key in arms:
        mask = included & (variant_ids == vid)
        if data.kind == "ratio":
            r, var, n = _ratio(y[mask], x[mask])
            raw[key] = (r, var)
            summaries.append({"variant": key, **_summary(r, math.sqrt(var), n)})
        elif int(mask.sum()) >= 2:
            s = stats.summarize(key, y[mask])
            raw[key] = s
            summaries.append(
                {
                    "variant": key,
                    "users": s.users,
                    "mean": s.mean,
                    "ci_low": s.ci_low,
                    "ci_high": s.ci_high,
                }
            )
        else:
            raw[key] = None
            summaries.append({"variant": key, **_summary(math.nan, math.nan, int(mask.sum()))})
    control = arms[0][1]
    comparisons = []
    for _, key in arms[1:]:
        comparisons.append({"variant": key, **compare_raw(data.kind, raw[control], raw[key])})
    return {"variants": summaries, "comparisons": comparisons}


def compare_raw(kind: str, c: Any, t: Any) -> dict[str, Any]:
    """Treatment against control from :func:`analyse`'s per-arm results."""
    if kind == "ratio":
        return _ratio_compare(c[0], c[1], t[0], t[1])
    if c is None or t is None or (c.std == 0 and t.std == 0):
        return {**dict.fromkeys(_COMPARISON_FIELDS, math.nan), "z": 0.0, "significant": False}
    return _mean_compare(c, t)


# --- CUPED --------------------------------------------------------------------------------


def _linearise(y: NDArray[np.float64], x: NDArray[np.float64]) -> NDArray[np.float64]:
    mx = float(x.mean()) if x.size else 0.0
    if mx <= 0:
        return np.zeros_like(y)
    r = float(y.sum() / x.sum())
    return np.asarray((y - r * x) / mx, dtype=np.float64)


def cuped(
    data: MetricData, variant_ids: NDArray[np.int64], arms: list[tuple[int, str]]
) -> dict[str, Any] | None:
    """The CUPED-adjusted comparisons (``stats.cuped``) and the variance reduction; None
    where there is not enough data (fewer than two users per arm, no pre-period variance)."""
    num, den = data.upto(data.num.shape[1])
    y, x, included = per_user_values(data, num, den)
    if data.kind == "ratio":
        y = _linearise(y, x)
        pre = _linearise(data.pre_num, data.pre_den)
    elif data.kind == "mean":
        has_pre = data.pre_den > 0
        pre = np.divide(data.pre_num, data.pre_den, out=np.zeros_like(data.pre_num), where=has_pre)
        if has_pre[included].any():
            pre = np.where(has_pre, pre, float(pre[included & has_pre].mean()))
    else:
        pre = data.pre_num
    yv, xv, arm_of = y[included], pre[included], variant_ids[included]
    if any(int((arm_of == vid).sum()) < 2 for vid, _ in arms) or float(np.var(xv)) == 0:
        return None
    result = stats.cuped(yv, xv)
    summaries = {key: stats.summarize(key, result.adjusted[arm_of == vid]) for vid, key in arms}
    control = summaries[arms[0][1]]
    # A ratio's adjusted values are linearised (mean about 0): its lift is relative to the
    # control's ratio, not to the linearised mean.
    in_control = included & (variant_ids == arms[0][0])
    base = _ratio(num[in_control], den[in_control])[0] if data.kind == "ratio" else math.nan
    comparisons = []
    for _, key in arms[1:]:
        t = summaries[key]
        if not (control.std or t.std):
            continue
        cmp = _mean_compare(control, t)
        if data.kind == "ratio":
            ok = math.isfinite(base) and base > 0
            cmp |= {
                "lift": cmp["diff"] / base if ok else math.nan,
                "lift_ci_low": cmp["ci_low"] / base if ok else math.nan,
                "lift_ci_high": cmp["ci_high"] / base if ok else math.nan,
            }
        comparisons.append({"variant": key, **cmp})
    return {
        "theta": result.theta,
        "variance_reduction": result.variance_reduction,
        "comparisons": comparisons,
    }


# --- sequential looks ---------------------------------------------------------------------


def sequential(
    z_paths: list[list[float]], fractions: list[float]
) -> tuple[list[dict[str, Any]], list[float]]:
    """The Lan-DeMets O'Brien-Fleming boundary (``stats.sequential_test``) applied to z
    paths (one z per daily look each; all paths share the looks, so the boundary is computed
    once); ``crossed``: some look reached its bound. Returns one result per path and the
    bounds."""
    z = np.asarray(z_paths, dtype=float).reshape(len(z_paths), len(fractions))
    result = stats.sequential_test(z, np.asarray(fractions), alpha=ALPHA)
    bounds = result.bounds
    out = []
    for row, rejected, first in zip(z, result.rejected, result.first_look, strict=True):
        out.append(
            {
                "looks": len(fractions),
                "information_fraction": fractions[-1],
                "z": float(row[-1]),
                "bound": float(bounds[-1]),
                "crossed": bool(rejected),
                # Which way: treatment above control (z >= bound) or below (z <= -bound).
                "crossed_higher": bool(np.any(row >= bounds)),
                "crossed_lower": bool(np.any(row <= -bounds)),
                "first_crossed_look": int(first) if first >= 0 else None,
            }
        )
    return out, [float(b) for b in bounds]


# --- latency ------------------------------------------------------------------------------


def _p95(values: NDArray[np.float64], axis: int = -1) -> NDArray[np.float64]:
    return np.asarray(np.percentile(values, 95, axis=axis), dtype=np.float64)


def _sample(values: NDArray[np.float64], rng: np.random.Generator) -> NDArray[np.float64]:
    if values.size <= LATENCY_MAX_SAMPLES:
        return values
    return rng.choice(values, size=LATENCY_MAX_SAMPLES, replace=False)


def latency_summary(values: NDArray[np.float64] | None, key: str) -> dict[str, Any]:
    n = 0 if values is None else int(values.size)
    p95 = float(_p95(values)) if values is not None and n else math.nan
    return {
        "variant": key,
        "users": n,
        "mean": p95,
        "ci_low": math.nan,
        "ci_high": math.nan,
    }


def latency_compare(
    control: NDArray[np.float64] | None, treatment: NDArray[np.float64] | None, key: str
) -> dict[str, Any]:
    """Relative change of the p95 with a percentile bootstrap interval, and Mann-Whitney's
    two-sided p-value (is either distribution shifted)."""
    empty = {
        "variant": key,
        **dict.fromkeys(_COMPARISON_FIELDS, math.nan),
        "z": 0.0,
        "significant": False,
    }
    if control is None or treatment is None or control.size < 2 or treatment.size < 2:
        return empty
    rng = np.random.default_rng(12)
    c, t = _sample(control, rng), _sample(treatment, rng)
    pc, pt = float(_p95(c)), float(_p95(t))
    if pc <= 0:
        return empty

    def relative(tt: NDArray[np.float64], cc: NDArray[np.float64], axis: int = -1):
        return _p95(tt, axis) / _p95(cc, axis) - 1.0

    boot = sps.bootstrap(
        (t, c),
        relative,
        n_resamples=LATENCY_RESAMPLES,
        confidence_level=1 - ALPHA,
        method="percentile",
        vectorized=True,
        batch=100,
        random_state=rng,
    )
    p = float(sps.mannwhitneyu(t, c, alternative="two-sided").pvalue)
    low, high = float(boot.confidence_interval.low), float(boot.confidence_interval.high)
    return {
        **empty,
        "diff": pt - pc,
        "lift": pt / pc - 1.0,
        "lift_ci_low": low,
        "lift_ci_high": high,
        "p_value": p,
        "significant": low > 0 or high < 0,
    }
