"""Off-policy evaluation on the product's own logs (issue 12, point 6).

The feed's random choices are logged with their propensities (``Decision``): the section
order a bandit chose, and the item drawn into ``for_you``'s exploration slot together with
the whole pool it was drawn from and every candidate's signals. Once a decision's reward
window has passed it carries its reward (``services/decisions.py``). That is what it takes
to estimate, before exposing anyone, what another policy would have achieved on the same
traffic:

- **exploration slot** (``kind="explore"``): a weight set (``weights:{...}``) or a reranker
  version (``reranker:v3``, ``reranker:active``) rescored on the logged pool, taking its
  best item (ties share); ``logging`` replays the logging policy itself (a sanity check:
  its estimate is the observed mean).
- **bandit** (``kind="bandit"``): always one arm (``arm:<key>``), or a bandit's current
  policy (``bandit:<key>``: its latest state, arm probabilities in each logged context).

Estimators (``experiments_app.ope``): IPS, self-normalised IPS and doubly robust, each with
its 95% interval and Kish's effective sample size. DR's reward model is cross-fitted on two
halves of the log (each half's model is fitted on the other half): for the exploration slot
the item's logged click-through rate scaled to the observed reward rate, for a bandit each
arm's mean reward.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from experience_app import public as experience
from experiments_app import bandit_store, ope
from experiments_app.bandits import (
    EpsilonGreedy,
    LinUCB,
    ThompsonBernoulli,
    epsilon_greedy_probabilities,
)
from experiments_app.models import Bandit, Decision
from inbo.errors import InvalidInput, NotFound

MAX_ROWS = 200_000
MAX_SPEC = 2_000


@dataclass(frozen=True, slots=True)
class Logged:
    """One rewarded decision as the estimators need it."""

    arm: str
    propensity: float
    reward: float
    context: Mapping[str, Any] = field(default_factory=dict)
    candidates: Sequence[Mapping[str, Any]] = ()


# A target policy: per logged row, the probability of each action it considers
# ({arm or item id as str: probability}); actions absent have probability 0.
Target = Callable[[Logged], dict[str, float]]


@dataclass(frozen=True)
class PolicyValue:
    """A policy's estimated value on the log, with each estimator's figure."""

    policy: str
    kind: str
    key: str
    rows: int
    observed: float  # the logging policy's mean reward on these rows
    match_rate: float  # rows where the target gives the logged action some probability
    estimates: tuple[ope.OpeEstimate, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "kind": self.kind,
            "key": self.key,
            "rows": self.rows,
            "observed": round(self.observed, 6),
            "match_rate": round(self.match_rate, 4),
            "estimates": [
                {
                    "estimator": e.estimator,
                    "value": round(e.value, 6),
                    "ci_low": round(e.ci_low, 6),
                    "ci_high": round(e.ci_high, 6),
                    "ess": round(e.ess, 1),
                    "n": e.n,
                }
                for e in self.estimates
            ],
        }


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, details={"policy": [message]})


# --- target policies --------------------------------------------------------------------


def _argmax_share(scores: Mapping[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    best = max(scores.values())
    winners = [a for a, s in scores.items() if s >= best - 1e-12]
    return {a: 1.0 / len(winners) for a in winners}


def _weights_target(spec: str) -> Target:
    """``weights:default`` (today's settings) or ``weights:{"freshness": 0.8, ...}``."""
    if spec == "default":
        weights = experience.Weights.from_settings()
    else:
        try:
            overrides = json.loads(spec)
        except ValueError:
            raise _invalid("weights: expects `default` or a JSON object of weights.") from None
        known = {f.name for f in dataclasses.fields(experience.Weights)}
        if not isinstance(overrides, dict) or not overrides:
            raise _invalid("weights: expects a non-empty JSON object of weights.")
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise _invalid(
                f"Unknown weight {', '.join(unknown)}; known: {', '.join(sorted(known))}."
            )
        if not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in overrides.values()
        ):
            raise _invalid("Weights are numbers.")
        weights = dataclasses.replace(
            experience.Weights.from_settings(), **{k: float(v) for k, v in overrides.items()}
        )

    def target(row: Logged) -> dict[str, float]:
        return _argmax_share(
            {
                str(c["item_id"]): experience.linear_score(c.get("signals") or {}, weights)
                for c in row.candidates
            }
        )

    return target


def _reranker_target(spec: str) -> Target:
    """``reranker:active`` or ``reranker:v<N>``: the version's scores on the logged pool."""
    if spec == "active":
        version = experience.model_active("reranker")
        if version is None:
            raise NotFound("No reranker version is active.", details={"policy": ["reranker"]})
    else:
        number = spec[1:] if spec.startswith("v") else ""
        if not number.isdigit() or len(number) > 9:
            raise _invalid("reranker: expects `active` or a version such as `v3`.")
        version = next(
            (v for v in experience.model_versions("reranker") if v.version == int(number)), None
        )
        if version is None:
            raise NotFound(f"No reranker version {spec}.", details={"policy": [spec]})
    try:
        model = experience.load_artifact(version)
    except experience.ArtifactError as exc:
        raise _invalid(f"reranker {version.label} cannot be loaded: {exc.reason}.") from None
    weights = experience.Weights.from_settings()

    def target(row: Logged) -> dict[str, float]:
        scored = [
            experience.Scored(
                int(c["item_id"]),
                experience.linear_score(c.get("signals") or {}, weights),
                dict(c.get("signals") or {}),
            )
            for c in row.candidates
        ]
        ranked = experience.rerank(scored, model)
        return _argmax_share({str(s.item_id): s.score for s in ranked})

    return target


def _logging_target(kind: str) -> Target:
    def target(row: Logged) -> dict[str, float]:
        if kind == Decision.Kind.EXPLORE and row.candidates:
            return {str(c["item_id"]): float(c.get("propensity", 0.0)) for c in row.candidates}
        return {row.arm: row.propensity}

    return target


def _arm_target(arm: str, bandit: Bandit) -> Target:
    if arm not in bandit.arms:
        raise _invalid(
            f"Bandit {bandit.key!r} has no arm {arm!r}; arms: {', '.join(bandit.arm_keys())}."
        )
    return lambda row: {arm: 1.0}


def arm_probabilities(
    policy: Any, context: Mapping[str, Any], rng: np.random.Generator
) -> np.ndarray:
    """Each arm's probability of being chosen by ``policy`` in ``context``."""
    if isinstance(policy, ThompsonBernoulli):
        return policy.propensities(rng)
    if isinstance(policy, LinUCB):
        values = policy.scores(bandit_store.features(dict(context)))
    elif isinstance(policy, EpsilonGreedy):
        values = policy._means()
    else:  # pragma: no cover - bandit_store.policy builds only the three kinds
        raise TypeError(type(policy).__name__)
    return epsilon_greedy_probabilities(values, policy.epsilon)


def _bandit_target(bandit: Bandit) -> Target:
    """The bandit's policy as it stands (its latest snapshot), per logged context."""
    definition = bandit_store.BanditDef.of(bandit)
    snapshot = bandit_store.latest_snapshot(bandit.pk)
    policy = bandit_store.policy(definition, snapshot.state if snapshot else None)
    rng = np.random.default_rng(0)
    cache: dict[str, dict[str, float]] = {}

    def target(row: Logged) -> dict[str, float]:
        signature = json.dumps(dict(row.context), sort_keys=True, default=str)
        if signature not in cache:
            p = arm_probabilities(policy, row.context, rng)
            cache[signature] = dict(zip(definition.arm_keys, map(float, p), strict=True))
        return cache[signature]

    return target


def parse_policy(spec: str, *, kind: str, key: str) -> Target:
    """The target policy named by ``spec`` (module docstring); InvalidInput if unknown."""
    if not isinstance(spec, str) or not spec or len(spec) > MAX_SPEC:
        raise _invalid("A policy is named by a non-empty string (at most 2,000 characters).")
    name, _, rest = spec.partition(":")
    if name == "logging":
        return _logging_target(kind)
    if kind == Decision.Kind.EXPLORE:
        if name == "weights":
            return _weights_target(rest)
        if name == "reranker":
            return _reranker_target(rest)
        raise _invalid(
            f"Unknown policy {spec[:60]!r} for the exploration slot: "
            "`logging`, `weights:default`, `weights:{...}`, `reranker:active`, `reranker:v<N>`."
        )
    bandit = Bandit.objects.filter(key=key).first()
    if bandit is None:
        raise NotFound(f"No bandit {key!r}.", details={"key": [key]})
    if name == "arm":
        return _arm_target(rest, bandit)
    if name == "bandit":
        if rest and rest != key:
            raise _invalid(
                "bandit: evaluates the bandit named by --key (`bandit:` or `bandit:<key>`)."
            )
        return _bandit_target(bandit)
    raise _invalid(
        f"Unknown policy {spec[:60]!r} for a bandit: `logging`, `arm:<arm>`, `bandit:<key>`."
    )


# --- the log -----------------------------------------------------------------------------


def logged(
    kind: str, key: str, *, since: datetime | None = None, until: datetime | None = None
) -> list[Logged]:
    """Rewarded decisions of ``kind`` and ``key`` in [since, until), oldest first (at most
    ``MAX_ROWS``, the latest ones). Rows with an impossible propensity are left out."""
    rows = Decision.objects.filter(kind=kind, key=key, reward__isnull=False)
    if since is not None:
        rows = rows.filter(decided_at__gte=since)
    if until is not None:
        rows = rows.filter(decided_at__lt=until)
    picked = rows.order_by("-decided_at").values_list(
        "arm", "propensity", "reward", "context", "candidates"
    )[:MAX_ROWS]
    out = [
        Logged(arm, float(p), float(r or 0.0), context or {}, candidates or ())
        for arm, p, r, context, candidates in picked
        if 0.0 < p <= 1.0
    ]
    out.reverse()
    return out


# --- estimates ---------------------------------------------------------------------------


def _reward_model(kind: str, train: Sequence[Logged]) -> Callable[[Logged, str], float]:
    """q_hat(row, action) fitted on ``train``."""
    mean = float(np.mean([r.reward for r in train])) if train else 0.0
    if kind == Decision.Kind.EXPLORE:
        chosen_ctr = []
        for r in train:
            c = next((c for c in r.candidates if str(c["item_id"]) == r.arm), None)
            chosen_ctr.append(float((c or {}).get("signals", {}).get("ctr", 0.0)))
        scale = mean / float(np.mean(chosen_ctr)) if chosen_ctr and np.mean(chosen_ctr) > 0 else 0.0

        def q_explore(row: Logged, action: str) -> float:
            c = next((c for c in row.candidates if str(c["item_id"]) == action), None)
            ctr = float((c or {}).get("signals", {}).get("ctr", 0.0))
            return min(1.0, scale * ctr) if scale else mean

        return q_explore
    by_arm: dict[str, list[float]] = {}
    for r in train:
        by_arm.setdefault(r.arm, []).append(r.reward)
    arm_mean = {a: float(np.mean(v)) for a, v in by_arm.items()}
    return lambda row, action: arm_mean.get(action, mean)


def evaluate(
    rows: Sequence[Logged], target: Target, *, policy: str, kind: str, key: str
) -> PolicyValue:
    """IPS, SNIPS and DR estimates of ``target``'s value on ``rows``."""
    if len(rows) < 2:
        raise InvalidInput(
            "Too few rewarded decisions to evaluate a policy (at least two are needed).",
            details={"rows": [f"{len(rows)} rewarded decision(s) in the window."]},
        )
    halves = (rows[0::2], rows[1::2])
    models = (_reward_model(kind, halves[1]), _reward_model(kind, halves[0]))
    r, p, pi, q_logged, v_target = [], [], [], [], []
    matches = 0
    for index, row in enumerate(rows):
        probabilities = target(row)
        q = models[index % 2]
        r.append(row.reward)
        p.append(row.propensity)
        share = min(1.0, max(0.0, probabilities.get(row.arm, 0.0)))
        pi.append(share)
        matches += share > 0
        q_logged.append(q(row, row.arm))
        v_target.append(sum(w * q(row, a) for a, w in probabilities.items()))
    estimates = (
        ope.ips(r, p, pi),
        ope.snips(r, p, pi) if sum(pi) > 0 else ope.ips(r, p, pi),
        ope.doubly_robust(r, p, pi, q_logged, v_target),
    )
    return PolicyValue(
        policy=policy,
        kind=kind,
        key=key,
        rows=len(rows),
        observed=float(np.mean(r)),
        match_rate=matches / len(rows),
        estimates=estimates,
    )


def evaluate_policies(
    specs: Iterable[str],
    *,
    kind: str,
    key: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[PolicyValue]:
    """Each policy of ``specs`` (and ``logging``, first, as the baseline) on the same log."""
    if kind not in Decision.Kind.values:
        raise InvalidInput(
            f"Unknown decision kind {kind!r}; one of {', '.join(Decision.Kind.values)}.",
            details={"kind": [kind]},
        )
    specs = list(dict.fromkeys(["logging", *specs]))
    targets = [(spec, parse_policy(spec, kind=kind, key=key)) for spec in specs]
    rows = logged(kind, key, since=since, until=until)
    return [evaluate(rows, t, policy=spec, kind=kind, key=key) for spec, t in targets]
