"""ml_app's Celery tasks: thin wrappers of the services (docs/ML.md "Collaborative
filtering in the product"). Both are idempotent: a training registers a new version (the
previous one stays), a fold-in rewrites whole sets and moves the watermark only after."""

from __future__ import annotations

import logging

from celery import shared_task

from ml_app.services import als_candidates, als_training, reranker_training

logger = logging.getLogger(__name__)


@shared_task(
    name="inbo.ml.train_als",
    ignore_result=True,
    soft_time_limit=2 * 3600,
    time_limit=2 * 3600 + 300,
)
def train_als() -> int | None:
    """Nightly: train, gate, register (and promote, and precompute) an ALS version.
    Returns the new version's id (None: another training runs, or nothing to train)."""
    try:
        result = als_training.train_als()
    except als_candidates.Busy:
        logger.info("ml.train_als_skipped reason=busy")
        return None
    return result.version.id if result.version is not None else None


@shared_task(
    name="inbo.ml.als_fold_in",
    ignore_result=True,
    soft_time_limit=50,
    time_limit=58,
)
def als_fold_in() -> int:
    """Every minute: users with new events get fresh ALS candidates from the active
    version without a retraining. Returns the users refreshed."""
    return als_candidates.als_fold_in().users


@shared_task(
    name="inbo.ml.train_reranker",
    ignore_result=True,
    soft_time_limit=3600,
    time_limit=3600 + 300,
)
def train_reranker() -> int | None:
    """Daily: train the LightGBM reranker from the served log, gate it against the active
    version, register it (and promote it when the gate passed and ``ML_AUTO_PROMOTE``).
    Returns the new version's id (None: not enough labelled responses yet)."""
    result = reranker_training.train_reranker()
    return result.version.id if result.version is not None else None
