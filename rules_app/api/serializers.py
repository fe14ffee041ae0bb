"""Shapes of the staff rules API. Inputs check JSON types and bounds; what makes a rule valid
(fields its kind needs, dates, caps, slot positions, known ids, contradictions) is
``rules_app.validation``'s, answered as 400 or 409."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from inbo.api.fields import (
    NOT_BLANK_PATTERN,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictFloatField,
    StrictIntegerField,
)
from rules_app.models import Rule, RuleVersion
from rules_app.validation import MAX_ADDEND, MAX_ITEMS, MAX_MULTIPLIER

MAX_ID = 2**63 - 1
MAX_NAME = 120
MAX_POSITIONS = 20
# Slots are on the first page of for_you (rules_app.validation checks it again, for the admin).
LAST_POSITION = settings.EXPERIENCE_SECTION_PAGE_SIZE - 1


def _id(**kwargs):
    return StrictIntegerField(min_value=1, max_value=MAX_ID, allow_null=True, **kwargs)


def _count(maximum: int, **kwargs):
    """A budget or a cap: 0 is never one (null leaves it unset)."""
    return StrictIntegerField(min_value=1, max_value=maximum, allow_null=True, **kwargs)


def _float(minimum: float = -1e6, maximum: float = 1e6, **kwargs):
    return StrictFloatField(min_value=minimum, max_value=maximum, allow_null=True, **kwargs)


@extend_schema_field(
    {"type": "string", "pattern": NOT_BLANK_PATTERN, "minLength": 1, "maxLength": MAX_NAME}
)
class NameField(StrictCharField):
    """A rule's name, trimmed: no NUL, not blank (the schema's pattern says the same)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=MAX_NAME, **kwargs)


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": LAST_POSITION},
        "maxItems": MAX_POSITIONS,
        "uniqueItems": True,
    }
)
class PositionsField(serializers.ListField):
    """Slot positions on the first page, each named once."""

    default_error_messages = {"repeated": "A position is named twice."}

    def __init__(self, **kwargs: Any) -> None:
        child = StrictIntegerField(min_value=0, max_value=LAST_POSITION)
        super().__init__(child=child, max_length=MAX_POSITIONS, **kwargs)

    def to_internal_value(self, data: Any) -> list[int]:
        values = super().to_internal_value(data)
        if len(set(values)) != len(values):
            self.fail("repeated")
        return values


class RuleInSerializer(serializers.Serializer):
    name = NameField()
    kind = StrictChoiceField(choices=Rule.Kind.choices)
    active = StrictBooleanField(required=False)
    starts_at = serializers.DateTimeField(required=False, allow_null=True)
    ends_at = serializers.DateTimeField(required=False, allow_null=True)
    target = StrictChoiceField(choices=Rule.Target.choices, required=False, allow_blank=True)
    target_id = _id(required=False)
    keyword = StrictCharField(max_length=100, required=False, allow_blank=True)
    mode = StrictChoiceField(choices=Rule.Mode.choices, required=False, allow_blank=True)
    # The bounds of either mode (a factor up to MAX_MULTIPLIER, an addend from -MAX_ADDEND);
    # the mode's own range is rules_app.validation's.
    value = _float(-MAX_ADDEND, MAX_MULTIPLIER, required=False)
    provider_id = _id(required=False)
    item_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=MAX_ID),
        max_length=MAX_ITEMS,
        required=False,
    )
    budget = _count(10**9, required=False)
    positions = PositionsField(required=False)
    user_cap_per_day = _count(10**6, required=False)
    relevance_floor = _float(required=False)
    max_per_provider = _count(1000, required=False)
    max_per_category = _count(1000, required=False)
    mmr_lambda = _float(0.0, 1.0, required=False)


class RuleSerializer(serializers.ModelSerializer):
    target = serializers.ChoiceField(choices=Rule.Target.choices, allow_blank=True, read_only=True)
    mode = serializers.ChoiceField(choices=Rule.Mode.choices, allow_blank=True, read_only=True)
    updated_by = serializers.CharField(
        source="updated_by.username", allow_null=True, read_only=True
    )

    class Meta:
        model = Rule
        fields = [
            "id",
            "name",
            "kind",
            "active",
            "starts_at",
            "ends_at",
            "target",
            "target_id",
            "keyword",
            "mode",
            "value",
            "provider_id",
            "item_ids",
            "budget",
            "positions",
            "user_cap_per_day",
            "relevance_floor",
            "max_per_provider",
            "max_per_category",
            "mmr_lambda",
            "created_at",
            "updated_at",
            "updated_by",
        ]
        read_only_fields = fields


class RuleVersionSerializer(serializers.ModelSerializer):
    changed_by = serializers.CharField(
        source="changed_by.username", allow_null=True, read_only=True
    )
    data = serializers.DictField(help_text="The rule's fields after the change.")
    changes = serializers.DictField(
        child=serializers.ListField(min_length=2, max_length=2),
        help_text="Each changed field: [before, after].",
    )

    class Meta:
        model = RuleVersion
        fields = ["id", "rule_id", "action", "changed_by", "changed_at", "data", "changes"]
        read_only_fields = fields


class RuleListParamsSerializer(serializers.Serializer):
    kind = StrictChoiceField(choices=Rule.Kind.choices, required=False)
