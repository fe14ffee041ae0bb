"""Experiments as data (issue 12): layers, experiments, their variants and the exposure log.

Allocation (ADR 0021): a layer's users are hashed into ``LAYER_BUCKETS`` buckets with the
layer's salt; a running experiment owns a contiguous slot of them, fixed when it starts, so
the experiments of one layer never share a user and starting or stopping one never moves the
users of another. Inside its slot an experiment splits users over its variants by a second,
independent hash with the experiment's own salt.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models

from experiments_app.assignment import LAYER_BUCKETS


def new_salt() -> str:
    return secrets.token_hex(8)


class Metric(models.TextChoices):
    """What an experiment is judged by (primary) or must not harm (guardrails)."""

    HOME_CTR = "home_ctr", "home CTR"
    READS_PER_USER = "reads_per_user", "reads per user"
    MEAN_DEPTH = "mean_depth", "mean reading depth"
    DISMISS_RATE = "dismiss_rate", "dismiss rate"
    SESSION_LENGTH = "session_length", "session length"


# Guardrails may also watch serving health, which is never a primary metric.
GUARDRAIL_METRICS = (*Metric.values, "latency_p95")


class Layer(models.Model):
    """A set of mutually exclusive experiments: each user falls in at most one of them."""

    key = models.SlugField(max_length=64, unique=True)
    salt = models.CharField(max_length=32, default=new_salt)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("key",)

    def __str__(self) -> str:
        return self.key


class Experiment(models.Model):
    """An A/B test: a hypothesis, variants with traffic weights, a slot of its layer while it
    runs. Changed only through ``experiments_app.services`` (validation, lifecycle)."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        RUNNING = "running"
        STOPPED = "stopped"

    key = models.SlugField(max_length=64, unique=True)
    hypothesis = models.TextField()
    layer = models.ForeignKey(Layer, on_delete=models.PROTECT, related_name="experiments")
    salt = models.CharField(max_length=32, default=new_salt)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.DRAFT)
    traffic_share = models.PositiveSmallIntegerField(
        default=100, help_text="Percent of the layer's users in this experiment (1 to 100)."
    )
    # Half-open range [start, end) of the layer's buckets; set at start, kept after stop.
    layer_slot_start = models.PositiveIntegerField(null=True, blank=True)
    layer_slot_end = models.PositiveIntegerField(null=True, blank=True)
    targeting = models.JSONField(default=dict, blank=True)
    primary_metric = models.CharField(
        max_length=32, choices=Metric.choices, default=Metric.HOME_CTR
    )
    guardrails = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    # Why it stopped: an operator's note, or the guardrail that was breached.
    stop_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(traffic_share__gte=1, traffic_share__lte=100),
                name="experiment_traffic_share_percent",
            ),
            models.CheckConstraint(
                condition=models.Q(layer_slot_start__isnull=True, layer_slot_end__isnull=True)
                | models.Q(
                    layer_slot_start__lt=models.F("layer_slot_end"),
                    layer_slot_end__lte=LAYER_BUCKETS,
                ),
                name="experiment_layer_slot_range",
            ),
        ]

    def __str__(self) -> str:
        return self.key


class Variant(models.Model):
    """One arm of an experiment: its share of the experiment's users and what it changes."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    key = models.SlugField(max_length=64)
    weight = models.PositiveSmallIntegerField(help_text="Percent of the experiment's users.")
    is_control = models.BooleanField(default=False)
    config = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("experiment", "id")
        constraints = [
            models.UniqueConstraint(fields=["experiment", "key"], name="variant_key_unique"),
            models.CheckConstraint(
                condition=models.Q(weight__lte=100), name="variant_weight_percent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.key}"


class Exposure(models.Model):
    """The first time a variant changed what a user saw; one row per (experiment, user)."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="exposures")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="exposures")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="experiment_exposures"
    )
    exposed_at = models.DateTimeField()

    class Meta:
        ordering = ("-exposed_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["experiment", "user"], name="exposure_once_per_user"),
        ]
        indexes = [models.Index(fields=["variant", "exposed_at"], name="exposure_variant_time")]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.user_id}"
