"""The experiments_app facade: the only module other apps import from here.

So far it holds the statistics (issue 12, in progress: docs/dev/STATUS.md) and the
assignment: ``assign`` (deterministic, ADR 0021) and ``log_exposure`` (once per user and
experiment, called where the variant changes what the user sees).
"""

from __future__ import annotations

from experiments_app.assignment import TargetingContext, assign, bucket
from experiments_app.services.exposures import log_exposure

__all__: list[str] = ["TargetingContext", "assign", "bucket", "log_exposure"]
