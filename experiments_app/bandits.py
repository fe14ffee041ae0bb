"""Bandit policies (issue 12, ML-006): Thompson sampling (Beta-Bernoulli), epsilon-greedy (the
baseline it is compared with) and a contextual LinUCB. Pure algorithms with explicit state:
``to_dict()`` gives JSON-ready primitives and ``from_dict()`` rebuilds the policy (storage is
the caller's). Every ``choose`` returns ``(arm, propensity)``, the probability with which
the policy picks that arm in that context, so the logs can feed off-policy evaluation.

Propensities:
- Thompson: P(arm a has the largest posterior draw) has no closed form for more than two
  arms; it is estimated by Monte Carlo with ``propensity_draws`` joint posterior draws, the
  first of which is the one that chose the arm, so the estimate is never 0 (>= 1/draws).
- epsilon-greedy: exact, ``eps / K + (1 - eps) / |ties|`` for a greedy arm.
- LinUCB: the argmax of the upper confidence bound is deterministic (propensity 1, useless
  for IPS), so the policy is mixed with epsilon exploration: exact propensity
  ``(1 - eps) [a = argmax] + eps / K``. Chosen over a softmax of the UCB scores because the
  propensity is then bounded below by eps/K (IPS weights at most K/eps, a known variance
  bound), and epsilon does not depend on the scale of the rewards, a softmax temperature does.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

STATE_VERSION = 1


def _argmax_ties(values: NDArray[np.float64]) -> NDArray[np.int64]:
    best = values.max()
    return np.flatnonzero(np.isclose(values, best, rtol=0.0, atol=1e-12))


def _epsilon_greedy_choice(
    values: NDArray[np.float64], epsilon: float, rng: np.random.Generator
) -> tuple[int, float]:
    """Play a best value (ties at random), or any arm uniformly with probability
    ``epsilon``; the arm and its exact probability."""
    greedy = _argmax_ties(values)
    explore = rng.random() < epsilon
    arm = int(rng.integers(values.size)) if explore else int(rng.choice(greedy))
    share = (1.0 - epsilon) / greedy.size if arm in greedy else 0.0
    return arm, epsilon / values.size + share


def epsilon_greedy_probabilities(values: ArrayLike, epsilon: float) -> NDArray[np.float64]:
    """Every arm's probability under :func:`_epsilon_greedy_choice` on ``values``."""
    v = np.asarray(values, dtype=float)
    greedy = _argmax_ties(v)
    probabilities = np.full(v.size, epsilon / v.size)
    probabilities[greedy] += (1.0 - epsilon) / greedy.size
    return probabilities


def _check_state(state: dict[str, Any], kind: str) -> None:
    if state.get("kind") != kind or state.get("version") != STATE_VERSION:
        raise ValueError(f"not a {kind} state of version {STATE_VERSION}")


class ThompsonBernoulli:
    """Beta-Bernoulli Thompson sampling; reward 0/1 (a click, a read)."""

    kind = "thompson_bernoulli"

    def __init__(
        self,
        n_arms: int,
        *,
        prior_alpha: float = 1.0,
        prior_beta: float = 1.0,
        propensity_draws: int = 1000,
    ) -> None:
        if n_arms < 2:
            raise ValueError("at least two arms")
        self.alpha = np.full(n_arms, float(prior_alpha))
        self.beta = np.full(n_arms, float(prior_beta))
        self.propensity_draws = int(propensity_draws)

    @property
    def n_arms(self) -> int:
        return int(self.alpha.size)

    def choose(
        self, context: Any = None, rng: np.random.Generator | None = None
    ) -> tuple[int, float]:
        """Draw one mean per arm from the posterior, play the largest; ``context`` ignored."""
        rng = rng or np.random.default_rng()
        draws = rng.beta(self.alpha, self.beta, size=(self.propensity_draws, self.n_arms))
        winners = draws.argmax(axis=1)
        arm = int(winners[0])
        return arm, float(np.mean(winners == arm))

    def propensities(self, rng: np.random.Generator | None = None) -> NDArray[np.float64]:
        """Monte Carlo estimate of every arm's probability of being chosen."""
        rng = rng or np.random.default_rng()
        draws = rng.beta(self.alpha, self.beta, size=(self.propensity_draws, self.n_arms))
        counts = np.bincount(draws.argmax(axis=1), minlength=self.n_arms)
        return np.asarray(counts / counts.sum(), dtype=float)

    def update(self, arm: int, reward: float, context: Any = None) -> None:
        if not 0.0 <= reward <= 1.0:
            raise ValueError("a Bernoulli reward lies in [0, 1]")
        self.alpha[arm] += reward
        self.beta[arm] += 1.0 - reward

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": STATE_VERSION,
            "alpha": self.alpha.tolist(),
            "beta": self.beta.tolist(),
            "propensity_draws": self.propensity_draws,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ThompsonBernoulli:
        _check_state(state, cls.kind)
        policy = cls(len(state["alpha"]), propensity_draws=int(state["propensity_draws"]))
        policy.alpha = np.asarray(state["alpha"], dtype=float)
        policy.beta = np.asarray(state["beta"], dtype=float)
        return policy


class EpsilonGreedy:
    """Play the best observed mean, explore uniformly with probability epsilon (unplayed
    arms count as best, so each is tried first)."""

    kind = "epsilon_greedy"

    def __init__(self, n_arms: int, *, epsilon: float = 0.1) -> None:
        if n_arms < 2 or not 0.0 <= epsilon <= 1.0:
            raise ValueError("at least two arms and 0 <= epsilon <= 1")
        self.epsilon = float(epsilon)
        self.counts = np.zeros(n_arms)
        self.sums = np.zeros(n_arms)

    @property
    def n_arms(self) -> int:
        return int(self.counts.size)

    def _means(self) -> NDArray[np.float64]:
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(self.counts > 0, self.sums / self.counts, np.inf)
        return np.asarray(means, dtype=float)

    def choose(
        self, context: Any = None, rng: np.random.Generator | None = None
    ) -> tuple[int, float]:
        return _epsilon_greedy_choice(self._means(), self.epsilon, rng or np.random.default_rng())

    def update(self, arm: int, reward: float, context: Any = None) -> None:
        self.counts[arm] += 1.0
        self.sums[arm] += float(reward)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": STATE_VERSION,
            "epsilon": self.epsilon,
            "counts": self.counts.tolist(),
            "sums": self.sums.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> EpsilonGreedy:
        _check_state(state, cls.kind)
        policy = cls(len(state["counts"]), epsilon=float(state["epsilon"]))
        policy.counts = np.asarray(state["counts"], dtype=float)
        policy.sums = np.asarray(state["sums"], dtype=float)
        return policy


def segment_hour_features(segment: int, hour: float, n_segments: int) -> NDArray[np.float64]:
    """LinUCB context: a bias, the user segment one-hot, and the hour of day on the circle
    (sin, cos) so that 23:00 and 00:00 are neighbours. Length ``n_segments + 3``."""
    if not 0 <= segment < n_segments:
        raise ValueError("segment out of range")
    x = np.zeros(n_segments + 3)
    x[0] = 1.0
    x[1 + segment] = 1.0
    angle = 2.0 * math.pi * (hour % 24.0) / 24.0
    x[-2], x[-1] = math.sin(angle), math.cos(angle)
    return x


class LinUCB:
    """Disjoint LinUCB (Li, Chu, Langford & Schapire 2010): one ridge regression per arm,
    score ``theta_a . x + alpha sqrt(x' A_a^-1 x)``; epsilon-mixed for a non-degenerate
    propensity (module docstring)."""

    kind = "linucb"

    def __init__(
        self,
        n_arms: int,
        n_features: int,
        *,
        alpha: float = 1.0,
        epsilon: float = 0.05,
        ridge: float = 1.0,
    ) -> None:
        if n_arms < 2 or n_features < 1 or not 0.0 <= epsilon <= 1.0:
            raise ValueError("at least two arms, one feature, 0 <= epsilon <= 1")
        self.alpha = float(alpha)
        self.epsilon = float(epsilon)
        self.A = np.stack([np.eye(n_features) * ridge for _ in range(n_arms)])
        self.b = np.zeros((n_arms, n_features))

    @property
    def n_arms(self) -> int:
        return int(self.b.shape[0])

    def scores(self, context: ArrayLike) -> NDArray[np.float64]:
        x = np.asarray(context, dtype=float)
        a_inv = np.linalg.inv(self.A)
        theta = np.einsum("kij,kj->ki", a_inv, self.b)
        width = np.sqrt(np.einsum("i,kij,j->k", x, a_inv, x))
        return np.asarray(theta @ x + self.alpha * width, dtype=float)

    def choose(
        self, context: ArrayLike, rng: np.random.Generator | None = None
    ) -> tuple[int, float]:
        return _epsilon_greedy_choice(
            self.scores(context), self.epsilon, rng or np.random.default_rng()
        )

    def update(self, arm: int, reward: float, context: ArrayLike) -> None:
        x = np.asarray(context, dtype=float)
        self.A[arm] += np.outer(x, x)
        self.b[arm] += float(reward) * x

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": STATE_VERSION,
            "alpha": self.alpha,
            "epsilon": self.epsilon,
            "A": self.A.tolist(),
            "b": self.b.tolist(),
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> LinUCB:
        _check_state(state, cls.kind)
        a = np.asarray(state["A"], dtype=float)
        policy = cls(a.shape[0], a.shape[1], alpha=state["alpha"], epsilon=state["epsilon"])
        policy.A = a
        policy.b = np.asarray(state["b"], dtype=float)
        return policy
