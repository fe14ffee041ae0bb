"""The feed's treatment provider (``experience_app.treatments.TreatmentProvider``).

Registered by ``ExperimentsAppConfig.ready``. Per home request the feed asks
:meth:`Provider.treatment`, which must cost nothing: the running experiments, their layers
and variants are read once per process every ``EXPERIMENTS_CACHE_SECONDS`` (two queries);
assignment is two hashes per experiment (ADR 0021). The user's join date is read (one
query) only when the user falls in the slot of a running experiment that targets new users.

Merging. The variants the user is in are merged in the order their experiments started
(then by id): ``weights`` are merged key by key and ``sources_off`` united; for
``reranker``, ``section_order``, ``bandit`` and ``explore`` the later experiment wins on a
clash. Experiments of one layer never share a user; experiments of different layers should
not change the same thing (the operator's responsibility, visible in the admin).

Bandits. :meth:`Provider.choose` reads the bandit's state from Redis (one GET); without
Redis (down, or restarted empty) from the latest ``BanditSnapshot``, kept in memory and
read again at most every ``EXPERIMENTS_SNAPSHOT_REFRESH_SECONDS``; without a snapshot from
the prior. An unknown or paused bandit keeps the default order (None). The policy is built
once per state (snapshot id) in a process; Thompson sampling's arm probabilities are
estimated then (``THOMPSON_DRAWS`` posterior draws) and each build draws its arm from them,
so the logged propensity is exactly the probability the arm was drawn with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
from django.db.models.signals import post_delete, post_save
from numpy.typing import NDArray

from experience_app import public as experience
from experiments_app import bandit_store
from experiments_app.assignment import TargetingContext, assign, bucket
from experiments_app.bandit_store import BanditDef
from experiments_app.bandits import ThompsonBernoulli
from experiments_app.models import Bandit, Experiment, Variant
from experiments_app.services import decisions as decision_log
from experiments_app.services.validation import config_errors, explore_settings

logger = logging.getLogger(__name__)

# Posterior draws that estimate Thompson sampling's arm probabilities, once per state.
THOMPSON_DRAWS = 20_000


@dataclass(frozen=True)
class _Running:
    """The running experiments as the request path reads them."""

    loaded_at: float
    experiments: tuple[Experiment, ...] = ()


@dataclass(frozen=True)
class _Bandits:
    loaded_at: float
    by_key: dict[str, BanditDef] = field(default_factory=dict)


class Provider:
    """What experiments change in the feed; one instance per process (module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: _Running | None = None
        self._bandits: _Bandits | None = None
        # bandit id -> (monotonic time read, (latest snapshot's id, its state) or (0, None))
        self._snapshots: dict[int, tuple[float, tuple[int, dict[str, Any] | None]]] = {}
        # bandit id -> (snapshot id, its policy, Thompson's arm probabilities)
        self._policies: dict[int, tuple[int, bandit_store.Policy, NDArray[np.float64] | None]] = {}

    def reset_cache(self, *, known_empty: bool = False) -> None:
        """Forget what was read, so the next request reads it again. ``known_empty``: the
        caller knows there are no experiments and no bandits (a test starting on an empty
        database): remember that instead, for ``EXPERIMENTS_CACHE_SECONDS`` or until the
        next change, so its first request costs no query either."""
        now = time.monotonic()
        with self._lock:
            self._running = _Running(now) if known_empty else None
            self._bandits = _Bandits(now) if known_empty else None
            self._snapshots = {}
            self._policies = {}

    # --- the running experiments -----------------------------------------------------------

    def _fresh(self, loaded_at: float) -> bool:
        return time.monotonic() - loaded_at < settings.EXPERIMENTS_CACHE_SECONDS

    def running(self) -> tuple[Experiment, ...]:
        cached = self._running
        if cached is not None and self._fresh(cached.loaded_at):
            return cached.experiments
        experiments = []
        for experiment in (
            Experiment.objects.filter(status=Experiment.Status.RUNNING)
            .select_related("layer")
            .prefetch_related("variants")
            .order_by("started_at", "id")
        ):
            # Configs are validated when written; one that is not valid (written before
            # validation, or by hand) must not reach the feed: its experiment is left out.
            bad = [
                v.key
                for v in experiment.variants.all()
                if config_errors(v.config, check_bandit=False)
            ]
            if bad:
                logger.warning(
                    "experiments.invalid_config experiment=%s variants=%s",
                    experiment.key,
                    ",".join(bad),
                )
                continue
            experiments.append(experiment)
        self._running = _Running(time.monotonic(), tuple(experiments))
        return self._running.experiments

    def treatment(
        self, user_id: int | None, context: experience.FeedContext
    ) -> experience.Treatment:
        """The user's treatment: the merge of the variants they are in (module docstring);
        the empty treatment when they are in none."""
        experiments = self.running()
        if not experiments:
            return experience.Treatment()
        joined: list[datetime | None] = []  # read at most once, when a rule needs it
        chosen: list[tuple[Experiment, Variant]] = []
        for experiment in experiments:
            if user_id is not None and "new_users_days" in experiment.targeting and not joined:
                slot = bucket(experiment.layer.salt, user_id)
                start, end = experiment.layer_slot_start or 0, experiment.layer_slot_end or 0
                if start <= slot < end:
                    joined.append(_joined_at(user_id))
            target = TargetingContext(
                now=context.now,
                joined_at=joined[0] if joined else None,
                platform=context.platform,
                segment=context.segment,
            )
            variant = assign(experiment, user_id, context=target)
            if variant is not None:
                chosen.append((experiment, variant))
        return merge(chosen)

    # --- bandits ---------------------------------------------------------------------------

    def bandits(self) -> dict[str, BanditDef]:
        cached = self._bandits
        if cached is not None and self._fresh(cached.loaded_at):
            return cached.by_key
        by_key = {b.key: BanditDef.of(b) for b in Bandit.objects.all()}
        self._bandits = _Bandits(time.monotonic(), by_key)
        return by_key

    def _snapshot_state(self, bandit: BanditDef) -> tuple[int, dict[str, Any] | None]:
        cached = self._snapshots.get(bandit.id)
        refresh = settings.EXPERIMENTS_SNAPSHOT_REFRESH_SECONDS
        if cached is not None and time.monotonic() - cached[0] < refresh:
            return cached[1]
        snapshot = bandit_store.latest_snapshot(bandit.id)
        found = (snapshot.pk, snapshot.state) if snapshot is not None else (0, None)
        self._snapshots[bandit.id] = (time.monotonic(), found)
        return found

    def state_of(self, bandit: BanditDef) -> tuple[int, dict[str, Any] | None]:
        """``(snapshot id, state)``: Redis's copy, else the latest snapshot (module
        docstring); ``(0, None)``: no state, the prior."""
        try:
            stored = bandit_store.read_state(bandit)
        except redis.RedisError as exc:
            logger.debug(
                "experiments.bandit_state_from_snapshot bandit=%s error=%s",
                bandit.key,
                type(exc).__name__,
            )
            stored = None
        if stored is not None:
            return stored.snapshot, stored.state
        return self._snapshot_state(bandit)

    def _policy(self, bandit: BanditDef) -> tuple[bandit_store.Policy, NDArray[np.float64] | None]:
        """The bandit's policy as of its current state, built once per state (snapshot) in
        this process; for Thompson sampling also its arm probabilities."""
        version, state = self.state_of(bandit)
        cached = self._policies.get(bandit.id)
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        policy = bandit_store.policy(bandit, state)
        probabilities = None
        if isinstance(policy, ThompsonBernoulli):
            policy.propensity_draws = THOMPSON_DRAWS
            probabilities = policy.propensities(np.random.default_rng())
        self._policies[bandit.id] = (version, policy, probabilities)
        return policy, probabilities

    def choose(
        self, bandit: str, user_id: int, context: Mapping[str, Any], now: datetime
    ) -> experience.Decision | None:
        """The bandit's arm (a section order) for this build, with its propensity; None for
        an unknown or paused bandit, or when PostgreSQL cannot be read either."""
        try:
            definition = self.bandits().get(bandit)
            if definition is None or not definition.active:
                return None
            policy, probabilities = self._policy(definition)
        except DatabaseError:
            logger.warning("experiments.bandit_unavailable bandit=%s", bandit)
            return None
        rng = np.random.default_rng()
        if probabilities is not None:
            # Thompson sampling draws the arm with the probability that it has the largest
            # posterior draw; those probabilities are estimated once per state, so the arm
            # is drawn from them and its logged propensity is exactly the one used.
            arm_index = int(rng.choice(len(probabilities), p=probabilities))
            propensity = float(probabilities[arm_index])
        else:
            arm_index, propensity = policy.choose(bandit_store.features(dict(context)), rng)
        arm = definition.arm_keys[arm_index]
        return experience.Decision(
            kind="bandit",
            key=bandit,
            arm=arm,
            propensity=float(propensity),
            context=dict(context),
            payload={"order": list(definition.orders[arm])},
        )

    # --- what was served ---------------------------------------------------------------

    def served(
        self,
        user_id: int,
        treatment: experience.Treatment,
        decisions: Sequence[experience.Decision],
        *,
        request_id: str,
        now: datetime,
    ) -> None:
        """Log the exposures (once per user and experiment) and the decisions, in one
        transaction of PostgreSQL (Redis is not needed). A DatabaseError propagates."""
        decision_log.record_served(
            user_id,
            [(a.experiment_id, a.variant_id) for a in treatment.assignments],
            decisions,
            experiments=treatment.experiments_json(),
            request_id=request_id,
            now=now,
        )


def _joined_at(user_id: int) -> datetime | None:
    return get_user_model().objects.filter(pk=user_id).values_list("date_joined", flat=True).first()


def merge(chosen: Sequence[tuple[Experiment, Variant]]) -> experience.Treatment:
    """One treatment from the variants a user is in, in experiment start order (module
    docstring: weights by key, sources united, the later wins otherwise)."""
    if not chosen:
        return experience.Treatment()
    weights: dict[str, float] = {}
    sources_off: set[str] = set()
    reranker: str | None = None
    section_order: tuple[str, ...] | None = None
    bandit: str | None = None
    explore: dict[str, Any] | None = None
    for _experiment, variant in chosen:
        config = variant.config or {}
        weights.update({name: float(v) for name, v in config.get("weights", {}).items()})
        sources_off.update(config.get("sources_off", ()))
        if "reranker" in config:
            reranker = None if config["reranker"] == "active" else config["reranker"]
        if "section_order" in config:
            section_order = tuple(config["section_order"])
        if "bandit" in config:
            bandit = config["bandit"]
        if "explore" in config:
            explore = explore_settings(config["explore"])
    return experience.Treatment(
        assignments=tuple(experience.Assignment(e.key, v.key, e.pk, v.pk) for e, v in chosen),
        weights=weights,
        reranker=reranker,
        sources_off=frozenset(sources_off),
        section_order=section_order,
        bandit=bandit,
        explore=explore,
    )


provider = Provider()


def reset_cache(*, known_empty: bool = False) -> None:
    """Forget the process's cached experiments, bandits and snapshots."""
    provider.reset_cache(known_empty=known_empty)


def definitions_changed(sender: Any = None, **kwargs: Any) -> None:
    """An experiment, variant or bandit was saved or deleted in this process: read them
    again at the next request, and once more after the commit (the first read may have
    run before it). Other processes see the change within ``EXPERIMENTS_CACHE_SECONDS``."""
    provider.reset_cache()
    transaction.on_commit(provider.reset_cache)


def connect_signals() -> None:
    for model in (Experiment, Variant, Bandit):
        post_save.connect(definitions_changed, sender=model, dispatch_uid=f"serving_{model}")
        post_delete.connect(definitions_changed, sender=model, dispatch_uid=f"serving_d_{model}")
