"""Reads of the experiments app (the staff API): lists, one experiment, exposure counts."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from experiments_app.models import Experiment, Exposure, Layer, Variant
from inbo.errors import NotFound


def experiment_list(*, status: str | None = None) -> QuerySet[Experiment]:
    """Experiments newest first, with their layer and variants (two queries a page)."""
    experiments = Experiment.objects.select_related("layer").prefetch_related(
        Prefetch("variants", queryset=Variant.objects.order_by("id"))
    )
    if status is not None:
        experiments = experiments.filter(status=status)
    return experiments


def experiment_detail(key: str) -> Experiment:
    """One experiment with its layer and variants; ``NotFound`` for an unknown key."""
    try:
        return experiment_list().get(key=key)
    except Experiment.DoesNotExist:
        raise NotFound(f"No experiment {key!r}.") from None


def exposure_counts(experiment_id: int) -> dict[int, int]:
    """Exposed users per variant id (one aggregate query; variants nobody saw are absent)."""
    rows = (
        Exposure.objects.filter(experiment_id=experiment_id)
        .order_by()
        .values("variant_id")
        .annotate(users=Count("id"))
        .values_list("variant_id", "users")
    )
    return dict(rows)


def layer_list() -> QuerySet[Layer]:
    """Layers by key, each with the number of its running experiments."""
    return Layer.objects.annotate(
        running_experiments=Count(
            "experiments", filter=Q(experiments__status=Experiment.Status.RUNNING)
        )
    ).order_by("key")


def layer_exists(key: str) -> bool:
    return Layer.objects.filter(key=key).exists()
