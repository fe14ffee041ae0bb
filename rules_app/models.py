"""Business rules (one table, one row a rule, its fields by kind) and their versions.

Ids of providers, items and categories are plain integers checked against reading_app on
every save (``rules_app.validation``), not foreign keys: rules_app reaches the catalog only
through ``reading_app.public``, and a rule naming a deleted item simply matches nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models


class Rule(models.Model):
    """A business rule the home feed applies after ranking (docs/RULES.md).

    - ``sponsored``: a campaign (``provider_id`` and/or ``item_ids``) shown at ``positions``
      of ``for_you``'s first page between ``starts_at`` and ``ends_at``, paced over that
      time to ``budget`` impressions, at most ``user_cap_per_day`` a user and day, only to
      users whose rank score of the item is at least ``relevance_floor``;
    - ``block``: a ``provider``, ``item`` or ``keyword`` (title words) removed everywhere;
    - ``boost``: a ``provider``, ``category`` or ``item``'s score times or plus ``value``
      (``mode``) between the optional ``starts_at`` and ``ends_at``;
    - ``diversity``: at most ``max_per_provider``/``max_per_category`` items a first page,
      and MMR with ``mmr_lambda`` over item embeddings where they exist.
    """

    class Kind(models.TextChoices):
        SPONSORED = "sponsored", "Sponsored campaign"
        BLOCK = "block", "Blocklist"
        BOOST = "boost", "Boost"
        DIVERSITY = "diversity", "Diversity"

    class Target(models.TextChoices):
        PROVIDER = "provider", "Provider"
        ITEM = "item", "Item"
        CATEGORY = "category", "Category"
        KEYWORD = "keyword", "Keyword"

    class Mode(models.TextChoices):
        MULTIPLY = "multiply", "Multiply the score"
        ADD = "add", "Add to the score"

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    active = models.BooleanField(default=True)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    # block and boost
    target = models.CharField(max_length=16, choices=Target.choices, blank=True)
    target_id = models.BigIntegerField(null=True, blank=True)
    keyword = models.CharField(max_length=100, blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, blank=True)
    value = models.FloatField(null=True, blank=True)
    # sponsored
    provider_id = models.BigIntegerField(null=True, blank=True)
    item_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    budget = models.PositiveIntegerField(null=True, blank=True)
    positions = ArrayField(models.PositiveSmallIntegerField(), default=list, blank=True)
    user_cap_per_day = models.PositiveIntegerField(null=True, blank=True)
    relevance_floor = models.FloatField(null=True, blank=True)
    # diversity
    max_per_provider = models.PositiveSmallIntegerField(null=True, blank=True)
    max_per_category = models.PositiveSmallIntegerField(null=True, blank=True)
    mmr_lambda = models.FloatField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["kind", "active"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.name}"


class RuleVersion(models.Model):
    """One change to a rule: who made it, when, and the rule as it was after it (``data``;
    the rule as it was before for a deletion) with the fields that changed. Its largest id
    is the rules' version: serving processes reload their rules when it moves."""

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        DELETE = "delete", "Deleted"

    # Not a foreign key: a deleted rule keeps its history.
    rule_id = models.BigIntegerField(db_index=True)
    action = models.CharField(max_length=8, choices=Action.choices)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    changed_at = models.DateTimeField(auto_now_add=True)
    data = models.JSONField(default=dict)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"rule {self.rule_id} {self.action} at {self.changed_at:%Y-%m-%d %H:%M}"
