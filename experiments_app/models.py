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

    # No index of their own (one row per exposed user): exposure_once_per_user and
    # exposure_variant_time lead with them.
    experiment = models.ForeignKey(
        Experiment, on_delete=models.CASCADE, related_name="exposures", db_index=False
    )
    variant = models.ForeignKey(
        Variant, on_delete=models.CASCADE, related_name="exposures", db_index=False
    )
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


class Bandit(models.Model):
    """A policy that picks the home feed's section order per build among fixed arms.

    ``arms``: {arm key: [section keys in order]}; an arm's index in the policy's state is
    its position in ``sorted(arms)`` (the JSON column does not keep the order keys were
    written in). Created through ``experiments_app.services.decisions.bandit_create``;
    its arms never change once it has a state (a new bandit is the way to test others).
    """

    class Kind(models.TextChoices):
        THOMPSON = "thompson"
        EPSILON_GREEDY = "epsilon_greedy"
        LINUCB = "linucb"

    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"

    key = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.THOMPSON)
    arms = models.JSONField()
    # epsilon (epsilon_greedy, linucb), alpha (linucb).
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("key",)

    def __str__(self) -> str:
        return self.key

    def arm_keys(self) -> list[str]:
        """Arm keys in the order of the policy's arms."""
        return sorted(self.arms)


class BanditSnapshot(models.Model):
    """The durable copy of a bandit's state (``bandits.py`` ``to_dict``) after
    ``decisions_applied`` rewarded decisions in total; the latest one is the truth Redis is
    restored from and the serving path falls back to. Written in the same transaction as
    the rewards it applied, so no reward is ever applied twice."""

    bandit = models.ForeignKey(Bandit, on_delete=models.CASCADE, related_name="snapshots")
    state = models.JSONField()
    decisions_applied = models.PositiveBigIntegerField(default=0)
    taken_at = models.DateTimeField()

    class Meta:
        ordering = ("-id",)
        indexes = [models.Index(fields=["bandit", "-id"], name="bandit_snapshot_latest")]

    def __str__(self) -> str:
        return f"{self.bandit_id}@{self.decisions_applied}"


class Decision(models.Model):
    """One random choice the feed made for a user, with its propensity: a bandit's arm (a
    section order) or the item put in the exploration slot. The log off-policy evaluation
    reads; ``reward`` is filled in once the reward window has passed."""

    class Kind(models.TextChoices):
        BANDIT = "bandit"
        EXPLORE = "explore"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="experiment_decisions"
    )
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # The bandit's key (bandit) or the exploration slot's name (explore).
    key = models.CharField(max_length=64)
    # The arm key (bandit) or the item id chosen (explore).
    arm = models.CharField(max_length=64)
    # No check constraint: the value the feed computed is logged as it was (OPE must see
    # it), never refused on the request path.
    propensity = models.FloatField()
    context = models.JSONField(default=dict, blank=True)
    # explore: [{"item_id", "score", "signals"}] the item was drawn from.
    candidates = models.JSONField(default=list, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    # {experiment key: variant key} of the treatment the feed was built under.
    experiments = models.JSONField(default=dict, blank=True)
    request_id = models.UUIDField(null=True, blank=True)
    decided_at = models.DateTimeField()
    reward = models.FloatField(null=True, blank=True)
    rewarded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-decided_at", "-id")
        indexes = [
            models.Index(fields=["kind", "key", "decided_at"], name="decision_kind_key_time"),
            models.Index(
                fields=["decided_at"],
                condition=models.Q(reward__isnull=True),
                name="decision_unrewarded",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.key}:{self.arm}"
