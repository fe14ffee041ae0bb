"""Bandits and the decision log: creating bandits, recording what the feed decided, and
turning decisions into rewards and bandit state (docs/EXPERIMENTS.md, "Variants in the feed
and bandits").

Rewards. A decision's reward is computed once its window (``EXPERIMENTS_REWARD_WINDOW_SECONDS``)
has passed, from the interaction log (``experience_app.public.home_engagements``: clicks and
reads attributed to a home section):

- ``bandit``: 1.0 when the user clicked or read anything on home in
  ``[decided_at, decided_at + window)``, else 0.0;
- ``explore``: 1.0 when the user clicked or read, on home, the item put in the exploration
  slot (the decision's ``arm``) in that window, else 0.0.

Exactly once. A bandit's rewards and its new state are one transaction: the bandit row is
locked, its unrewarded decisions are marked, and a ``BanditSnapshot`` is written with the
state after them and the running count of decisions applied. A crash before the commit
leaves nothing applied; after it, the marks keep the next run from applying them again.
The lock is PostgreSQL's (the bandit row, ``SKIP LOCKED`` on decisions), not a Redis lock,
so rewards go on while Redis is away; Redis only gets the copy the feed reads.
"""

from __future__ import annotations

import bisect
import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Avg, Count
from django.utils import timezone

from experience_app import public as experience
from experiments_app import bandit_store
from experiments_app.bandit_store import BanditDef, StoredState
from experiments_app.models import Bandit, BanditSnapshot, Decision, Experiment, Variant
from experiments_app.services.exposures import log_exposure
from experiments_app.services.validation import section_order_errors, validate_key
from inbo.errors import Conflict, InvalidInput, NotFound

logger = logging.getLogger(__name__)

MIN_ARMS, MAX_ARMS = 2, 8
EPSILON_RANGE = (0.0, 1.0)
ALPHA_RANGE = (0.0, 10.0)


# --- bandits -----------------------------------------------------------------------------


def _invalid(field_name: str, message: str) -> InvalidInput:
    return InvalidInput(message, details={field_name: [message]})


def validate_bandit(kind: str, arms: Any, params: Any) -> None:
    """A known kind; 2 to 8 arms with slug keys, each a valid section order; params
    ``epsilon`` in [0, 1] (epsilon_greedy, linucb) and ``alpha`` in [0, 10] (linucb)."""
    if kind not in Bandit.Kind.values:
        raise _invalid("kind", f"Unknown kind {kind!r}; one of {', '.join(Bandit.Kind.values)}.")
    if not isinstance(arms, Mapping) or not MIN_ARMS <= len(arms) <= MAX_ARMS:
        raise _invalid("arms", f"A bandit has {MIN_ARMS} to {MAX_ARMS} arms {{key: sections}}.")
    for arm, order in arms.items():
        validate_key(arm, "arms")
        problems = section_order_errors(order)
        if problems:
            raise _invalid("arms", f"Arm {arm!r}: {problems[0]}")
    if len({tuple(order) for order in arms.values()}) != len(arms):
        raise _invalid("arms", "Two arms have the same section order.")
    params = params or {}
    if not isinstance(params, Mapping):
        raise _invalid("params", "params is an object.")
    allowed = {
        Bandit.Kind.THOMPSON: (),
        Bandit.Kind.EPSILON_GREEDY: ("epsilon",),
        Bandit.Kind.LINUCB: ("epsilon", "alpha"),
    }[Bandit.Kind(kind)]
    for name, value in params.items():
        if name not in allowed:
            raise _invalid("params", f"A {kind} bandit takes {', '.join(allowed) or 'no params'}.")
        low, high = EPSILON_RANGE if name == "epsilon" else ALPHA_RANGE
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not low <= value <= high:
            raise _invalid("params", f"{name} is a number from {low:g} to {high:g}.")


@transaction.atomic
def bandit_create(
    key: str,
    *,
    kind: str,
    arms: Mapping[str, Sequence[str]],
    params: Mapping[str, float] | None = None,
    at: datetime | None = None,
) -> Bandit:
    """A new active bandit and its first snapshot (the prior), so the feed has a state to
    fall back to from the start."""
    validate_key(key)
    arms = {arm: list(order) for arm, order in arms.items()} if isinstance(arms, Mapping) else arms
    validate_bandit(kind, arms, params)
    if Bandit.objects.filter(key=key).exists():
        raise Conflict(f"A bandit {key!r} exists already.")
    bandit = Bandit.objects.create(key=key, kind=kind, arms=arms, params=dict(params or {}))
    definition = BanditDef.of(bandit)
    snapshot = BanditSnapshot.objects.create(
        bandit=bandit,
        state=bandit_store.prior(definition).to_dict(),
        decisions_applied=0,
        taken_at=at or timezone.now(),
    )
    stored = StoredState.of(snapshot)
    transaction.on_commit(lambda: bandit_store.publish(key, stored))
    return bandit


def bandit_get(key: str) -> Bandit:
    try:
        return Bandit.objects.get(key=key)
    except Bandit.DoesNotExist:
        raise NotFound(f"No bandit {key!r}.") from None


def bandit_set_status(key: str, status: str) -> Bandit:
    """Pause (the feed keeps its default order, rewards still apply) or resume a bandit."""
    if status not in Bandit.Status.values:
        raise _invalid("status", f"One of {', '.join(Bandit.Status.values)}.")
    bandit = bandit_get(key)
    bandit.status = status
    bandit.save(update_fields=["status"])
    return bandit


@dataclass(frozen=True)
class ArmSummary:
    arm: str
    order: tuple[str, ...]
    pulls: int
    rewarded: int
    mean_reward: float | None


def bandit_summary(bandit: Bandit) -> tuple[BanditSnapshot | None, list[ArmSummary]]:
    """The latest snapshot and, per arm, the decisions logged, those rewarded and their
    mean reward (two queries)."""
    pulls = dict(
        Decision.objects.filter(kind=Decision.Kind.BANDIT, key=bandit.key)
        .values_list("arm")
        .annotate(n=Count("id"))
        .values_list("arm", "n")
    )
    rewarded = {
        arm: (n, mean)
        for arm, n, mean in Decision.objects.filter(
            kind=Decision.Kind.BANDIT, key=bandit.key, reward__isnull=False
        )
        .values_list("arm")
        .annotate(n=Count("id"), mean=Avg("reward"))
        .values_list("arm", "n", "mean")
    }
    arms = [
        ArmSummary(
            arm,
            tuple(bandit.arms[arm]),
            pulls.get(arm, 0),
            rewarded.get(arm, (0, None))[0],
            rewarded.get(arm, (0, None))[1],
        )
        for arm in bandit.arm_keys()
    ]
    return bandit_store.latest_snapshot(bandit.pk), arms


# --- what the feed decided ----------------------------------------------------------------


def _request_uuid(request_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(request_id))
    except ValueError:
        return None


@transaction.atomic
def record_served(
    user_id: int,
    assignments: Sequence[tuple[int, int]],
    decisions: Sequence[experience.Decision],
    *,
    experiments: Mapping[str, str],
    request_id: str,
    now: datetime,
) -> int:
    """Log the exposures (``(experiment_id, variant_id)`` pairs; once per user and
    experiment) and the decisions (``experience_app.treatments.Decision``) of one served
    feed; PostgreSQL only. Returns the exposures that were new."""
    new = 0
    for experiment_id, variant_id in assignments:
        # Unsaved stand-ins: ``log_exposure`` needs only their ids (no query to load them).
        experiment = Experiment(pk=experiment_id)
        variant = Variant(pk=variant_id, experiment_id=experiment_id)
        new += log_exposure(experiment, variant, user_id, now)
    if decisions:
        request = _request_uuid(request_id)
        Decision.objects.bulk_create(
            Decision(
                user_id=user_id,
                kind=d.kind,
                key=d.key[:64],
                arm=str(d.arm)[:64],
                propensity=float(d.propensity),
                context=dict(d.context),
                candidates=[dict(c) for c in d.candidates],
                payload=dict(d.payload),
                experiments=dict(experiments),
                request_id=request,
                decided_at=now,
            )
            for d in decisions
        )
    return new


# --- rewards and state ------------------------------------------------------------------


@dataclass
class UpdateFigures:
    """What one run of :func:`update_bandits` did."""

    bandit_rewarded: int = 0
    explore_rewarded: int = 0
    applied: int = 0
    snapshots: int = 0
    restored: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _rewards(rows: Sequence[Decision], window: timedelta) -> list[float]:
    """The reward of each decision (module docstring), from one query of engagements."""
    if not rows:
        return []
    since = min(r.decided_at for r in rows)
    until = max(r.decided_at for r in rows) + window
    times: dict[int, list[datetime]] = defaultdict(list)
    items: dict[tuple[int, int], list[datetime]] = defaultdict(list)
    for user_id, item_id, occurred_at in experience.home_engagements(
        {r.user_id for r in rows}, since, until
    ):
        times[user_id].append(occurred_at)
        items[(user_id, item_id)].append(occurred_at)
    for found in (*times.values(), *items.values()):
        found.sort()

    def hit(found: list[datetime], start: datetime) -> bool:
        i = bisect.bisect_left(found, start)
        return i < len(found) and found[i] < start + window

    rewards = []
    for row in rows:
        if row.kind == Decision.Kind.EXPLORE:
            found = items.get((row.user_id, int(row.arm)), []) if row.arm.isdigit() else []
        else:
            found = times.get(row.user_id, [])
        rewards.append(1.0 if hit(found, row.decided_at) else 0.0)
    return rewards


def _mark(rows: Sequence[Decision], rewards: Sequence[float], now: datetime) -> None:
    by_reward: dict[float, list[int]] = defaultdict(list)
    for row, reward in zip(rows, rewards, strict=True):
        row.reward, row.rewarded_at = reward, now
        by_reward[reward].append(row.pk)
    for reward, ids in by_reward.items():
        Decision.objects.filter(pk__in=ids).update(reward=reward, rewarded_at=now)


def _pending(kind: str, cutoff: datetime, batch: int, key: str | None = None) -> list[Decision]:
    pending = Decision.objects.filter(kind=kind, reward__isnull=True, decided_at__lt=cutoff)
    if key is not None:
        pending = pending.filter(key=key)
    return list(
        pending.select_for_update(skip_locked=True)
        .order_by("decided_at", "id")
        .only("id", "user_id", "kind", "key", "arm", "context", "decided_at")[:batch]
    )


def _reward_bandit_batch(
    key: str, cutoff: datetime, now: datetime, batch: int, figures: UpdateFigures
) -> int:
    """One transaction: lock the bandit, reward a batch of its decisions, apply them to
    its state and snapshot it. The number of decisions rewarded."""
    window = timedelta(seconds=settings.EXPERIMENTS_REWARD_WINDOW_SECONDS)
    with transaction.atomic():
        bandit = Bandit.objects.select_for_update().filter(key=key).first()
        rows = _pending(Decision.Kind.BANDIT, cutoff, batch, key)
        if not rows:
            return 0
        rewards = _rewards(rows, window)
        _mark(rows, rewards, now)
        figures.bandit_rewarded += len(rows)
        if bandit is None:  # deleted: the rewards still serve off-policy evaluation
            return len(rows)
        definition = BanditDef.of(bandit)
        latest = bandit_store.latest_snapshot(bandit.pk)
        policy = bandit_store.policy(definition, latest.state if latest else None)
        index = {arm: i for i, arm in enumerate(definition.arm_keys)}
        applied = 0
        for row, reward in zip(rows, rewards, strict=True):
            if row.arm in index:
                policy.update(index[row.arm], reward, bandit_store.features(row.context))
                applied += 1
        snapshot = BanditSnapshot.objects.create(
            bandit=bandit,
            state=policy.to_dict(),
            decisions_applied=(latest.decisions_applied if latest else 0) + applied,
            taken_at=now,
        )
        figures.applied += applied
        figures.snapshots += 1
        stored = StoredState.of(snapshot)
        transaction.on_commit(lambda: bandit_store.publish(key, stored))
    return len(rows)


def _reward_explore_batch(cutoff: datetime, now: datetime, batch: int) -> int:
    window = timedelta(seconds=settings.EXPERIMENTS_REWARD_WINDOW_SECONDS)
    with transaction.atomic():
        rows = _pending(Decision.Kind.EXPLORE, cutoff, batch)
        _mark(rows, _rewards(rows, window), now)
    return len(rows)


def update_bandits(*, now: datetime | None = None, batch: int | None = None) -> UpdateFigures:
    """Reward every decision whose window has passed and fold the bandit ones into their
    bandit's state (module docstring); first restore into Redis the state of any bandit
    whose copy is missing there. Safe to run concurrently and twice: each decision is
    rewarded and applied once."""
    now = now or timezone.now()
    batch = batch or settings.EXPERIMENTS_REWARD_BATCH
    cutoff = now - timedelta(seconds=settings.EXPERIMENTS_REWARD_WINDOW_SECONDS)
    figures = UpdateFigures()
    figures.restored = bandit_store.restore_missing(list(Bandit.objects.all()))
    keys = (
        Decision.objects.filter(
            kind=Decision.Kind.BANDIT, reward__isnull=True, decided_at__lt=cutoff
        )
        .order_by()
        .values_list("key", flat=True)
        .distinct()
    )
    for key in list(keys):
        while _reward_bandit_batch(key, cutoff, now, batch, figures) == batch:
            pass
    while (done := _reward_explore_batch(cutoff, now, batch)) > 0:
        figures.explore_rewarded += done
        if done < batch:
            break
    return figures
