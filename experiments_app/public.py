"""The experiments_app facade: the only module other apps import from here.

The assignment (``assign``, deterministic, ADR 0021) and ``log_exposure``, the lifecycle and
the statistics other apps reuse, and ``health_figures`` for monitoring. The feed meets
experiments through the provider ``experiments_app.serving`` registers at start-up
(``experience_app.treatments``), not through this facade.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from experiments_app.assignment import TargetingContext, assign, bucket
from experiments_app.models import Decision, Experiment
from experiments_app.services.decisions import bandit_create
from experiments_app.services.exposures import log_exposure
from experiments_app.services.lifecycle import experiment_create, experiment_start, experiment_stop
from experiments_app.services.validation import VariantSpec
from experiments_app.stats import compare, cuped, srm, summarize

# The lifecycle and the statistics serve ml_app's replayed A/B test (``manage.py ab_replay``),
# which runs a real experiment through them; ``bench/experiments.py`` runs experiments and
# a bandit through them to measure what they add to the home feed.
__all__: list[str] = [
    "TargetingContext",
    "VariantSpec",
    "assign",
    "bandit_create",
    "bucket",
    "compare",
    "cuped",
    "experiment_create",
    "experiment_start",
    "experiment_stop",
    "health_figures",
    "log_exposure",
    "srm",
    "summarize",
]


def health_figures() -> dict[str, float]:
    """Figures for monitoring (PostgreSQL, indexed): running experiments, decisions past
    their reward window still waiting for their reward, and how far past the window the
    oldest of them is (0 when none waits: the reward task keeps up)."""
    due = timezone.now() - timedelta(seconds=settings.EXPERIMENTS_REWARD_WINDOW_SECONDS)
    waiting = Decision.objects.filter(reward__isnull=True, decided_at__lt=due)
    oldest = waiting.order_by("decided_at").values_list("decided_at", flat=True).first()
    return {
        "running": float(Experiment.objects.filter(status=Experiment.Status.RUNNING).count()),
        "rewards_due": float(waiting.count()),
        "rewards_lag_seconds": (due - oldest).total_seconds() if oldest else 0.0,
    }
