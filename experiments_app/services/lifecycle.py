"""The experiment lifecycle, draft -> running -> stopped, and the edits each state allows.

A draft is edited freely (within validation). Starting validates it again and allocates its
slot of the layer, under a lock of the layer row so two starts cannot take the same buckets.
Once running or stopped, the allocation (variants, weights, traffic share, salt, layer,
targeting) is frozen: changing it would move users between arms mid-test. A stopped
experiment releases its slot (it no longer assigns anyone) and never runs again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from experiments_app.models import LAYER_BUCKETS, Experiment, Layer, Metric, Variant
from experiments_app.services.validation import (
    VariantSpec,
    validate_key,
    validate_metrics,
    validate_targeting,
    validate_traffic_share,
    validate_variants,
)
from inbo.errors import Conflict, InvalidInput, NotFound

# Fields that decide who gets which variant: frozen once an experiment has started.
ALLOCATION_FIELDS = ("layer", "salt", "traffic_share", "targeting")
FREE_FIELDS = ("hypothesis", "primary_metric", "guardrails")


def layer_ensure(key: str, *, description: str = "") -> Layer:
    """The layer with this key, created (with a fresh salt) if there is none."""
    validate_key(key, "layer")
    layer, _ = Layer.objects.get_or_create(key=key, defaults={"description": description})
    return layer


def experiment_get(key: str) -> Experiment:
    try:
        return Experiment.objects.select_related("layer").get(key=key)
    except Experiment.DoesNotExist:
        raise NotFound(f"No experiment {key!r}.") from None


@transaction.atomic
def experiment_create(
    *,
    key: str,
    hypothesis: str,
    layer_key: str,
    variants: Sequence[VariantSpec],
    traffic_share: int = 100,
    targeting: dict[str, Any] | None = None,
    primary_metric: str = Metric.HOME_CTR,
    guardrails: Iterable[str] = (),
) -> Experiment:
    """A new draft experiment with its variants, validated."""
    validate_key(key)
    if not hypothesis.strip():
        raise InvalidInput("A hypothesis is required.", details={"hypothesis": ["Required."]})
    guardrails = list(guardrails)
    validate_variants(variants)
    validate_traffic_share(traffic_share)
    validate_targeting(targeting)
    validate_metrics(primary_metric, guardrails)
    taken = Conflict(f"An experiment {key!r} exists already.")
    if Experiment.objects.filter(key=key).exists():
        raise taken
    layer = layer_ensure(layer_key)
    try:
        with transaction.atomic():  # a savepoint: the unique key decides between two creates
            experiment = Experiment.objects.create(
                key=key,
                hypothesis=hypothesis.strip(),
                layer=layer,
                traffic_share=traffic_share,
                targeting=targeting or {},
                primary_metric=primary_metric,
                guardrails=guardrails,
            )
    except IntegrityError:
        raise taken from None
    _write_variants(experiment, variants)
    return experiment


def _write_variants(experiment: Experiment, variants: Sequence[VariantSpec]) -> None:
    Variant.objects.bulk_create(
        Variant(
            experiment=experiment,
            key=v.key,
            weight=v.weight,
            is_control=v.is_control,
            config=dict(v.config),
        )
        for v in variants
    )


def _frozen(experiment: Experiment, what: str) -> Conflict:
    return Conflict(
        f"Experiment {experiment.key!r} is {experiment.status}: its {what} cannot change "
        "(it would move users between variants). Create a new experiment instead."
    )


@transaction.atomic
def experiment_set_variants(experiment: Experiment, variants: Sequence[VariantSpec]) -> None:
    """Replace a draft's variants."""
    experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if experiment.status != Experiment.Status.DRAFT:
        raise _frozen(experiment, "variants and weights")
    validate_variants(variants)
    experiment.variants.all().delete()
    _write_variants(experiment, variants)


@transaction.atomic
def experiment_update(experiment: Experiment, **changes: Any) -> Experiment:
    """Change fields of an experiment. Allocation fields (``ALLOCATION_FIELDS``; ``layer``
    given as a layer key) only in a draft; hypothesis and metrics at any time."""
    unknown = set(changes) - set(ALLOCATION_FIELDS) - set(FREE_FIELDS)
    if unknown:
        raise ValueError(f"not editable: {', '.join(sorted(unknown))}")
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    allocation = sorted(set(changes) & set(ALLOCATION_FIELDS))
    if allocation and locked.status != Experiment.Status.DRAFT:
        raise _frozen(locked, " and ".join(allocation))
    if "hypothesis" in changes:  # as on creation: required, stored stripped
        if not isinstance(changes["hypothesis"], str) or not changes["hypothesis"].strip():
            raise InvalidInput("A hypothesis is required.", details={"hypothesis": ["Required."]})
        changes["hypothesis"] = changes["hypothesis"].strip()
    if "traffic_share" in changes:
        validate_traffic_share(changes["traffic_share"])
    if "targeting" in changes:
        validate_targeting(changes["targeting"])
        changes["targeting"] = changes["targeting"] or {}
    if "salt" in changes and not str(changes["salt"]).strip():
        raise InvalidInput("The salt cannot be empty.", details={"salt": ["Required."]})
    if "layer" in changes:
        changes["layer"] = layer_ensure(changes["layer"])
    validate_metrics(
        changes.get("primary_metric", locked.primary_metric),
        changes.get("guardrails", locked.guardrails),
    )
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.save()
    return locked


def _free_slot(layer: Layer, size: int) -> tuple[int, int] | None:
    """The lowest free run of ``size`` buckets among the layer's running experiments."""
    taken = Experiment.objects.filter(
        layer=layer,
        status=Experiment.Status.RUNNING,
        layer_slot_start__isnull=False,
        layer_slot_end__isnull=False,
    ).order_by("layer_slot_start")
    cursor = 0
    for start, end in taken.values_list("layer_slot_start", "layer_slot_end"):
        assert start is not None and end is not None  # filtered above
        if start - cursor >= size:
            return cursor, cursor + size
        cursor = max(cursor, end)
    if LAYER_BUCKETS - cursor >= size:
        return cursor, cursor + size
    return None


@transaction.atomic
def experiment_start(experiment: Experiment, *, at: datetime | None = None) -> Experiment:
    """Validate a draft once more and run it in a free slot of its layer."""
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status != Experiment.Status.DRAFT:
        raise Conflict(
            f"Experiment {locked.key!r} is {locked.status}; only a draft can start "
            "(a stopped experiment never runs again: create a new one)."
        )
    validate_variants(
        [VariantSpec(v.key, v.weight, v.is_control, v.config) for v in locked.variants.all()]
    )
    validate_traffic_share(locked.traffic_share)
    validate_targeting(locked.targeting)
    # The layer row is the lock: starts in one layer allocate one at a time.
    layer = Layer.objects.select_for_update().get(pk=locked.layer_id)
    size = locked.traffic_share * LAYER_BUCKETS // 100
    slot = _free_slot(layer, size)
    if slot is None:
        raise Conflict(
            f"Layer {layer.key!r} has no free {locked.traffic_share}% for {locked.key!r}: "
            "stop an experiment in it, lower the traffic share, or use another layer."
        )
    locked.layer_slot_start, locked.layer_slot_end = slot
    locked.status = Experiment.Status.RUNNING
    locked.started_at = at or timezone.now()
    try:
        locked.save()
    except IntegrityError as exc:  # a check constraint: a bug in the allocation above
        raise Conflict(f"Could not allocate a slot for {locked.key!r}.") from exc
    return locked


@transaction.atomic
def experiment_stop(
    experiment: Experiment, *, at: datetime | None = None, reason: str = ""
) -> Experiment:
    """Stop a running experiment: it assigns nobody from now on and its slot is free.
    The slot stays recorded (the analysis knows who was in it); ``reason`` says why (an
    operator's note, or the guardrail breached)."""
    locked = Experiment.objects.select_for_update().get(pk=experiment.pk)
    if locked.status != Experiment.Status.RUNNING:
        raise Conflict(f"Experiment {locked.key!r} is {locked.status}; only a running one stops.")
    locked.status = Experiment.Status.STOPPED
    locked.stopped_at = at or timezone.now()
    locked.stop_reason = reason[:300]
    locked.save()
    return locked
