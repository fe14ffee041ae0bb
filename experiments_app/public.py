"""The experiments_app facade: the only module other apps import from here.

So far it holds the statistics (issue 12, in progress: docs/dev/STATUS.md) and the
assignment: ``assign`` (deterministic, ADR 0021) and ``log_exposure`` (once per user and
experiment, called where the variant changes what the user sees).
"""

from __future__ import annotations

from experiments_app.assignment import TargetingContext, assign, bucket
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
    "log_exposure",
    "srm",
    "summarize",
]
