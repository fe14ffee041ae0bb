"""Where a bandit's state lives, and how its policy is built from it.

PostgreSQL holds the truth: the latest ``BanditSnapshot`` (written in the same transaction
as the rewards it applied). Redis holds a copy for the feed (``keys.bandit_state``, one GET
per build), written after each snapshot commits and only when it is newer than the copy
there (a compare-and-set on the snapshot id), and restored from the latest snapshot by the
update task when Redis came back empty. No function here raises on a Redis error except
:func:`read_state` and :func:`write_state`, whose callers fall back.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from numpy.typing import NDArray

from experiments_app.bandits import EpsilonGreedy, LinUCB, ThompsonBernoulli
from experiments_app.models import Bandit, BanditSnapshot
from inbo import keys
from inbo import redis as inbo_redis

logger = logging.getLogger(__name__)

Policy = ThompsonBernoulli | EpsilonGreedy | LinUCB

# LinUCB's context: a bias, the user's segment one-hot, the daypart (hour // 6) one-hot.
SEGMENTS = ("cold", "warm")
DAYPARTS = 4
N_FEATURES = 1 + len(SEGMENTS) + DAYPARTS
DEFAULT_EPSILON: dict[str, float] = {"epsilon_greedy": 0.1, "linucb": 0.05}
DEFAULT_ALPHA = 1.0


@dataclass(frozen=True, slots=True)
class BanditDef:
    """A bandit row as the serving path keeps it in memory."""

    id: int
    key: str
    kind: str
    arm_keys: tuple[str, ...]
    orders: dict[str, tuple[str, ...]]
    params: dict[str, Any]
    active: bool

    @classmethod
    def of(cls, bandit: Bandit) -> BanditDef:
        return cls(
            id=bandit.pk,
            key=bandit.key,
            kind=bandit.kind,
            arm_keys=tuple(bandit.arm_keys()),
            orders={arm: tuple(order) for arm, order in bandit.arms.items()},
            params=dict(bandit.params or {}),
            active=bandit.status == Bandit.Status.ACTIVE,
        )


@dataclass(frozen=True, slots=True)
class StoredState:
    """A policy state and the snapshot it comes from (``snapshot`` 0: none, the prior)."""

    bandit_id: int
    snapshot: int
    applied: int
    state: dict[str, Any]

    def to_json(self) -> str:
        return json.dumps(
            {
                "bandit": self.bandit_id,
                "snapshot": self.snapshot,
                "applied": self.applied,
                "state": self.state,
            },
            separators=(",", ":"),
        )

    @classmethod
    def of(cls, snapshot: BanditSnapshot) -> StoredState:
        return cls(snapshot.bandit_id, snapshot.pk, snapshot.decisions_applied, snapshot.state)


def features(context: Any) -> NDArray[np.float64]:
    """LinUCB's context vector of a decision context ``{"segment", "daypart"}``; an unknown
    or missing value leaves its one-hot block at zero."""
    x = np.zeros(N_FEATURES)
    x[0] = 1.0
    context = context if isinstance(context, dict) else {}
    segment = context.get("segment")
    if segment in SEGMENTS:
        x[1 + SEGMENTS.index(segment)] = 1.0
    daypart = context.get("daypart")
    if isinstance(daypart, int) and not isinstance(daypart, bool) and 0 <= daypart < DAYPARTS:
        x[1 + len(SEGMENTS) + daypart] = 1.0
    return x


def prior(bandit: BanditDef) -> Policy:
    """The bandit's policy before any reward."""
    n = len(bandit.arm_keys)
    epsilon = float(bandit.params.get("epsilon", DEFAULT_EPSILON.get(bandit.kind, 0.1)))
    if bandit.kind == Bandit.Kind.EPSILON_GREEDY:
        return EpsilonGreedy(n, epsilon=epsilon)
    if bandit.kind == Bandit.Kind.LINUCB:
        alpha = float(bandit.params.get("alpha", DEFAULT_ALPHA))
        return LinUCB(n, N_FEATURES, alpha=alpha, epsilon=epsilon)
    return ThompsonBernoulli(n)


def policy(bandit: BanditDef, state: dict[str, Any] | None) -> Policy:
    """The policy in ``state``, or the prior when there is none or it does not fit the
    bandit (another kind, another number of arms)."""
    if state is None:
        return prior(bandit)
    try:
        restored: Policy
        if bandit.kind == Bandit.Kind.EPSILON_GREEDY:
            restored = EpsilonGreedy.from_dict(state)
        elif bandit.kind == Bandit.Kind.LINUCB:
            restored = LinUCB.from_dict(state)
        else:
            restored = ThompsonBernoulli.from_dict(state)
    except (ValueError, KeyError, TypeError):
        logger.warning("experiments.bandit_state_unreadable bandit=%s", bandit.key)
        return prior(bandit)
    if restored.n_arms != len(bandit.arm_keys):
        logger.warning("experiments.bandit_state_arms_mismatch bandit=%s", bandit.key)
        return prior(bandit)
    return restored


def latest_snapshot(bandit_id: int) -> BanditSnapshot | None:
    return BanditSnapshot.objects.filter(bandit_id=bandit_id).order_by("-id").first()


def read_state(bandit: BanditDef, client: redis.Redis | None = None) -> StoredState | None:
    """The copy in Redis (one GET), or None when there is none or it is another bandit's
    (a bandit deleted and created again under the same key). Raises ``redis.RedisError``."""
    raw = (client or inbo_redis.state()).get(keys.bandit_state(bandit.key))
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        stored = StoredState(
            int(data["bandit"]), int(data["snapshot"]), int(data["applied"]), data["state"]
        )
    except (ValueError, KeyError, TypeError):
        logger.warning("experiments.bandit_copy_unreadable bandit=%s", bandit.key)
        return None
    return stored if stored.bandit_id == bandit.id else None


# Write the copy unless the one there comes from the same bandit and a later snapshot
# (snapshot ids only grow), so a slow writer never puts an older state back.
_WRITE_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
    local ok, old = pcall(cjson.decode, current)
    if ok and type(old) == 'table' and tonumber(old['bandit']) == tonumber(ARGV[2])
        and tonumber(old['snapshot']) and tonumber(old['snapshot']) >= tonumber(ARGV[3]) then
        return 0
    end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


def write_state(bandit_key: str, stored: StoredState, client: redis.Redis | None = None) -> bool:
    """Put ``stored`` in Redis unless a newer snapshot of the bandit is there; True when
    written. Raises ``redis.RedisError``."""
    client = client or inbo_redis.state()
    written = client.eval(
        _WRITE_IF_NEWER,
        1,
        keys.bandit_state(bandit_key),
        stored.to_json(),
        stored.bandit_id,
        stored.snapshot,
    )
    return bool(written)


def publish(bandit_key: str, stored: StoredState) -> bool:
    """:func:`write_state`, logging instead of raising when Redis is away (the feed then
    reads the snapshot; the next update run writes the copy again)."""
    try:
        return write_state(bandit_key, stored)
    except redis.RedisError as exc:
        logger.warning(
            "experiments.bandit_copy_not_written bandit=%s error=%s",
            bandit_key,
            type(exc).__name__,
        )
        return False


def restore_missing(bandits: list[Bandit]) -> int:
    """Copy the latest snapshot of each bandit whose copy Redis lacks (or holds an older
    one of); the number written. Stops quietly when Redis is away."""
    restored = 0
    for bandit in bandits:
        snapshot = latest_snapshot(bandit.pk)
        if snapshot is None:
            continue
        try:
            current = read_state(BanditDef.of(bandit))
            if current is None or current.snapshot < snapshot.pk:
                restored += write_state(bandit.key, StoredState.of(snapshot))
        except redis.RedisError:
            return restored
    return restored
