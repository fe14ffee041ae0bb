"""The append-only event log, the source of truth for every counter and feature."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from features_app.contracts import EventType

EVENT_TYPE_CHOICES = [(t.value, t.value.capitalize()) for t in EventType]


class UserEvent(models.Model):
    """One thing a user did with an item, at the moment it happened.

    Append-only. Designed for monthly range partitioning on ``occurred_at``: every unique
    key includes ``occurred_at`` (PostgreSQL requires a partitioned table's unique keys to
    contain the partition key), so idempotency is ``(event_id, occurred_at)`` — a retried
    batch carries the same ``event_id`` and the same ``occurred_at``.
    """

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="events"
    )
    item = models.ForeignKey("reading_app.Item", on_delete=models.CASCADE, related_name="events")
    event_type = models.CharField(max_length=16, choices=EVENT_TYPE_CHOICES)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    event_id = models.UUIDField(default=uuid.uuid4, help_text="Client idempotency key")
    source = models.CharField(max_length=32, default="app", help_text="app, demo, mind, …")
    context = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-occurred_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "occurred_at"], name="user_event_idempotency"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "occurred_at"], name="user_event_user_time_idx"),
            models.Index(fields=["item", "occurred_at"], name="user_event_item_time_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.user_id} {self.event_type} {self.item_id} @ {self.occurred_at:%Y-%m-%d %H:%M}"
        )
