"""Periodic work of the experiments app. Thin: each task calls a service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from experiments_app.services import decisions, guardrails

logger = logging.getLogger(__name__)


@shared_task(
    name="inbo.experiments.update_bandits",
    ignore_result=True,
    soft_time_limit=50,
    time_limit=58,
    # Idempotent (every reward is marked in the transaction that applies it), so a message
    # redelivered after a lost worker changes nothing that was done.
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=3,
)
def update_bandits() -> dict[str, int]:
    """Every minute: reward the decisions whose window has passed, fold them into their
    bandit's state (snapshot in PostgreSQL, copy in Redis), restore missing copies."""
    figures = decisions.update_bandits().as_dict()
    logger.info("experiments.update_bandits %s", " ".join(f"{k}={v}" for k, v in figures.items()))
    return figures


@shared_task(
    name="inbo.experiments.check_guardrails",
    ignore_result=True,
    soft_time_limit=600,
    time_limit=660,
    # Idempotent: a stopped experiment is not running, so a redelivered check skips it.
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=3,
)
def check_guardrails() -> list[str]:
    """Every 15 minutes: stop the running experiments whose guardrails are breached
    (``experiments_app.services.guardrails``). Returns the keys stopped."""
    return guardrails.check_guardrails()
