"""Off-policy evaluation (issue 12): the value of a target policy estimated from logs of a
logging policy. Each logged row holds the reward, the logging propensity of the action taken
and the target policy's probability of that same action.

- IPS: ``mean(w r)``, ``w = pi_target / p_logging``; unbiased when the logging propensities
  are right and positive wherever the target acts.
- SNIPS (self-normalised): ``sum(w r) / sum(w)``; slightly biased, far less variance.
- DR (doubly robust, Dudik, Langford & Li 2011): ``mean(v_hat + w (r - q_hat))`` with the
  reward model given per row: ``q_hat`` its prediction for the logged action and ``v_hat``
  its expected reward under the target policy in that row's context. Unbiased if either the
  propensities or the reward model are right.

Intervals are **normal approximations** (CLT over rows; per-row terms averaged with
``statsmodels``' ``DescrStatsW.zconfint_mean``); SNIPS's is the delta method for a ratio
estimator, the mean of ``w (r - V) / mean(w)``. A bootstrap would be no better calibrated at
these sizes and costs hundreds of resamples. The effective sample size is Kish's
``(sum w)^2 / sum(w^2)``: when it is a small share of the rows, a few heavy weights carry the
estimate and its interval is not to be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from statsmodels.stats.weightstats import DescrStatsW


@dataclass(frozen=True)
class OpeEstimate:
    """A policy value estimate with its (1 - alpha) interval and the weights' ESS."""

    estimator: str
    value: float
    ci_low: float
    ci_high: float
    ess: float
    n: int

    def covers(self, truth: float) -> bool:
        return self.ci_low <= truth <= self.ci_high


def _weights(
    rewards: ArrayLike, logging_propensity: ArrayLike, target_propensity: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r = np.asarray(rewards, dtype=float)
    p = np.asarray(logging_propensity, dtype=float)
    pi = np.asarray(target_propensity, dtype=float)
    if not r.shape == p.shape == pi.shape or r.ndim != 1 or r.size < 2:
        raise ValueError("one reward and two propensities per logged row, at least two rows")
    if np.any(p <= 0) or np.any(p > 1) or np.any(pi < 0) or np.any(pi > 1):
        raise ValueError("propensities lie in (0, 1] (logging) and [0, 1] (target)")
    return r, pi / p


def effective_sample_size(weights: ArrayLike) -> float:
    """Kish's effective sample size of importance weights."""
    w = np.asarray(weights, dtype=float)
    total = float(np.sum(w**2))
    return float(np.sum(w) ** 2 / total) if total > 0 else 0.0


def _estimate(
    name: str, terms: NDArray[np.float64], value: float, w: NDArray[np.float64], alpha: float
) -> OpeEstimate:
    # The interval is centred on ``value``: ``terms`` are the per-row influence terms.
    stats = DescrStatsW(terms)
    low, high = stats.zconfint_mean(alpha=alpha)
    shift = value - float(stats.mean)
    return OpeEstimate(
        estimator=name,
        value=value,
        ci_low=float(low) + shift,
        ci_high=float(high) + shift,
        ess=effective_sample_size(w),
        n=int(terms.size),
    )


def ips(
    rewards: ArrayLike,
    logging_propensity: ArrayLike,
    target_propensity: ArrayLike,
    *,
    alpha: float = 0.05,
) -> OpeEstimate:
    """Inverse propensity scoring."""
    r, w = _weights(rewards, logging_propensity, target_propensity)
    terms = w * r
    return _estimate("ips", terms, float(terms.mean()), w, alpha)


def snips(
    rewards: ArrayLike,
    logging_propensity: ArrayLike,
    target_propensity: ArrayLike,
    *,
    alpha: float = 0.05,
) -> OpeEstimate:
    """Self-normalised IPS, with a delta-method interval."""
    r, w = _weights(rewards, logging_propensity, target_propensity)
    if w.sum() <= 0:
        raise ValueError("the target policy never takes a logged action")
    value = float(np.sum(w * r) / np.sum(w))
    influence = w * (r - value) / w.mean()
    return _estimate("snips", influence + value, value, w, alpha)


def doubly_robust(
    rewards: ArrayLike,
    logging_propensity: ArrayLike,
    target_propensity: ArrayLike,
    model_logged: ArrayLike,
    model_target: ArrayLike,
    *,
    alpha: float = 0.05,
) -> OpeEstimate:
    """Doubly robust: ``model_logged`` = q_hat(x_i, a_i), ``model_target`` =
    sum_a pi(a | x_i) q_hat(x_i, a), both per row."""
    r, w = _weights(rewards, logging_propensity, target_propensity)
    q = np.asarray(model_logged, dtype=float)
    v = np.asarray(model_target, dtype=float)
    if q.shape != r.shape or v.shape != r.shape:
        raise ValueError("one model prediction of each kind per row")
    terms = v + w * (r - q)
    return _estimate("doubly_robust", terms, float(terms.mean()), w, alpha)
