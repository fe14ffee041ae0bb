"""The ml_app facade. Arrows run one way (ADR 0019): no serving app imports the offline
app, whose entry points are management commands and Celery tasks. ``bench/`` may read what
a training produces, to build a model of the same size: the reranker's parameters."""

from __future__ import annotations

from ml_app.services.reranker_training import MAX_ROUNDS as RERANKER_MAX_ROUNDS
from ml_app.services.reranker_training import PARAMS as RERANKER_PARAMS

__all__ = ["RERANKER_MAX_ROUNDS", "RERANKER_PARAMS"]
