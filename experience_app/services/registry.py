"""The model registry: register, promote and roll back trained versions.

ml_app registers what it trains (with the gate it measured), operators promote and roll
back from the admin or ``manage.py``, and serving loads the active version
(:mod:`experience_app.services.rerank`). Every change of the active version is one
transaction that also records which version it replaced, so the chain of previous versions
is both the fallback order and what a rollback restores.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from experience_app.models import ModelVersion
from inbo.errors import Conflict, NotFound

logger = logging.getLogger(__name__)


def checksum(artifact: bytes) -> str:
    return hashlib.sha256(artifact).hexdigest()


def register(
    kind: str,
    artifact: bytes,
    *,
    trained_from: datetime,
    trained_to: datetime,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    gate: Mapping[str, Any],
    features: Sequence[str] = (),
    note: str = "",
) -> ModelVersion:
    """Store a trained artifact as the next candidate version of ``kind``."""
    if kind not in ModelVersion.Kind.values:
        raise ValueError(f"unknown model kind {kind!r}")
    with transaction.atomic():
        # Serialise version numbering per kind (two trainings finishing at once).
        list(ModelVersion.objects.select_for_update().filter(kind=kind).values_list("id"))
        last = ModelVersion.objects.filter(kind=kind).aggregate(v=Max("version"))["v"] or 0
        version = ModelVersion.objects.create(
            kind=kind,
            version=last + 1,
            trained_from=trained_from,
            trained_to=trained_to,
            params=dict(params),
            metrics=dict(metrics),
            gate=dict(gate),
            features=list(features),
            artifact=artifact,
            artifact_sha256=checksum(artifact),
            artifact_bytes=len(artifact),
            note=note[:200],
        )
    logger.info(
        "registry.registered model=%s gate_passed=%s", version.label, bool(gate.get("passed"))
    )
    return version


def active(kind: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()


def active_id(kind: str) -> int | None:
    """The active version's id (one indexed query, no artifact read)."""
    return (
        ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE)
        .values_list("id", flat=True)
        .first()
    )


def gate_problem(candidate: ModelVersion, current: ModelVersion | None) -> str | None:
    """Why ``candidate`` may not replace ``current``, or None when its gate allows it.

    The gate was measured at training time against the version active then; a gate measured
    against another version than ``current`` is stale and must be measured again.
    """
    gate = candidate.gate or {}
    if not gate.get("passed"):
        return (
            f"its gate did not pass: {gate.get('metric', 'metric')} "
            f"{gate.get('candidate')} vs {gate.get('baseline')} ({gate.get('baseline_name')})"
        )
    against = gate.get("baseline_version")
    if (current.id if current else None) != against:
        now_active = current.label if current else "none"
        return (
            f"its gate was measured against version id {against}, but the active version is "
            f"{now_active}: train or evaluate it again"
        )
    return None


def promote(version_id: int, *, force: bool = False, by: str = "") -> ModelVersion:
    """Make a candidate (or a retired version, with ``force``) the active version of its kind.

    Without ``force`` only a candidate whose gate passed against the currently active
    version is promoted (:func:`gate_problem`); ``force`` is for operators restoring a
    known-good version and is logged.
    """
    with transaction.atomic():
        try:
            candidate = ModelVersion.objects.select_for_update().get(id=version_id)
        except ModelVersion.DoesNotExist:
            raise NotFound(f"No model version {version_id}.") from None
        current = (
            ModelVersion.objects.select_for_update()
            .filter(kind=candidate.kind, status=ModelVersion.Status.ACTIVE)
            .first()
        )
        if current is not None and current.id == candidate.id:
            raise Conflict(f"{candidate.label} is already active.")
        if not force:
            if candidate.status != ModelVersion.Status.CANDIDATE:
                raise Conflict(f"{candidate.label} is {candidate.status}, not a candidate.")
            problem = gate_problem(candidate, current)
            if problem:
                raise Conflict(f"{candidate.label} cannot be promoted: {problem}.")
        now = timezone.now()
        if current is not None:
            current.status = ModelVersion.Status.RETIRED
            current.retired_at = now
            current.save(update_fields=["status", "retired_at"])
        candidate.status = ModelVersion.Status.ACTIVE
        candidate.promoted_at = now
        candidate.previous = current
        candidate.save(update_fields=["status", "promoted_at", "previous"])
    logger.info(
        "registry.promoted model=%s replaced=%s force=%s by=%s",
        candidate.label,
        current.label if current else "none",
        force,
        by or "-",
    )
    return candidate


def rollback(kind: str, *, by: str = "") -> ModelVersion | None:
    """Retire the active version of ``kind`` and restore the one it replaced (None: serving
    goes back to the linear ranking). Returns the version now active."""
    with transaction.atomic():
        current = (
            ModelVersion.objects.select_for_update()
            .filter(kind=kind, status=ModelVersion.Status.ACTIVE)
            .first()
        )
        if current is None:
            raise Conflict(f"No active {kind} version to roll back.")
        now = timezone.now()
        current.status = ModelVersion.Status.RETIRED
        current.retired_at = now
        current.save(update_fields=["status", "retired_at"])
        restored = None
        if current.previous_id is not None:
            restored = ModelVersion.objects.select_for_update().get(id=current.previous_id)
            restored.status = ModelVersion.Status.ACTIVE
            restored.promoted_at = now
            restored.retired_at = None
            restored.save(update_fields=["status", "promoted_at", "retired_at"])
    logger.info(
        "registry.rolled_back model=%s restored=%s by=%s",
        current.label,
        restored.label if restored else "linear",
        by or "-",
    )
    return restored


def versions(kind: str | None = None, *, limit: int = 50) -> list[ModelVersion]:
    qs = ModelVersion.objects.defer("artifact")
    if kind:
        qs = qs.filter(kind=kind)
    return list(qs.order_by("kind", "-version")[:limit])
