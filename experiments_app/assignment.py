"""Deterministic assignment of users to variants (ADR 0021).

``bucket(salt, user_id)`` is the first 8 bytes of ``sha256("<salt>:<user_id>")`` modulo
``LAYER_BUCKETS``: the same in every process, host and Python version (Python's ``hash`` is
salted per process). A user is in an experiment when the bucket under the *layer's* salt
falls in the experiment's slot; the variant comes from the bucket under the *experiment's*
salt against the variants' cumulative weights. The two hashes are independent, so the split
inside a slot follows the weights whatever the slot is, and a slot never moves once given:
other experiments starting or stopping in the layer change nobody's assignment here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # no models at import time: ``bucket`` runs without Django set up
    from experiments_app.models import Experiment, Variant

LAYER_BUCKETS = 10_000
RUNNING = "running"  # Experiment.Status.RUNNING


def bucket(salt: str, user_id: int | str) -> int:
    """The user's bucket in ``[0, LAYER_BUCKETS)`` under ``salt``."""
    digest = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % LAYER_BUCKETS


@dataclass(frozen=True)
class TargetingContext:
    """What targeting rules look at; fields left ``None`` are unknown (a rule on an unknown
    field does not match)."""

    now: datetime
    joined_at: datetime | None = None
    segment: str | None = None
    platform: str | None = None


def targeting_matches(targeting: dict, context: TargetingContext | None) -> bool:
    """Every rule in ``targeting`` holds for ``context``; empty targeting matches everyone."""
    if not targeting:
        return True
    if context is None:
        return False
    days = targeting.get("new_users_days")
    if days is not None and (
        context.joined_at is None or context.now - context.joined_at > timedelta(days=days)
    ):
        return False
    if "segment" in targeting and context.segment != targeting["segment"]:
        return False
    return "platform" not in targeting or context.platform == targeting["platform"]


def _variants(experiment: Experiment) -> list[Variant]:
    return sorted(experiment.variants.all(), key=lambda v: v.id)


def control_of(experiment: Experiment) -> Variant | None:
    return next((v for v in _variants(experiment) if v.is_control), None)


def assign(
    experiment: Experiment,
    user_id: int | str | None,
    *,
    context: TargetingContext | None = None,
) -> Variant | None:
    """The variant ``user_id`` sees in ``experiment``, or ``None`` when the user is not in
    it (the experiment is not running, the user's layer bucket is outside its slot, or the
    targeting does not match). An anonymous user (``None``) gets the control of a running
    experiment. Pure apart from reading the experiment's layer and variants (prefetch them
    with ``select_related("layer").prefetch_related("variants")`` for many calls)."""
    if experiment.status != RUNNING or experiment.layer_slot_start is None:
        return None
    if user_id is None:
        return control_of(experiment)
    layer_bucket = bucket(experiment.layer.salt, user_id)
    if not experiment.layer_slot_start <= layer_bucket < (experiment.layer_slot_end or 0):
        return None
    if not targeting_matches(experiment.targeting, context):
        return None
    point = bucket(experiment.salt, user_id)
    cumulative = 0
    variants = _variants(experiment)
    for variant in variants:
        cumulative += variant.weight * LAYER_BUCKETS // 100
        if point < cumulative:
            return variant
    return control_of(experiment)  # unreachable while weights sum to 100
