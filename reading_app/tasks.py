"""reading_app tasks: thin wrappers around services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.contrib.sessions.models import Session
from django.utils import timezone

logger = logging.getLogger(__name__)


@shared_task(
    name="inbo.reading.clear_expired_sessions",
    ignore_result=True,
    soft_time_limit=300,
    time_limit=360,
)
def clear_expired_sessions() -> int:
    """Delete expired browser sessions (idempotent: deleting twice deletes nothing more)."""
    deleted, _ = Session.objects.filter(expire_date__lt=timezone.now()).delete()
    logger.info("sessions.cleared count=%d", deleted)
    return deleted
