"""Shapes of the staff rules API. Inputs check JSON types and bounds; what makes a rule valid
(fields its kind needs, dates, caps, slot positions, known ids, contradictions) is
``rules_app.validation``'s, answered as 400 or 409."""

from __future__ import annotations

from rest_framework import serializers

from inbo.api.fields import StrictCharField, StrictChoiceField, StrictIntegerField
from rules_app.models import Rule, RuleVersion
from rules_app.validation import MAX_ITEMS

MAX_ID = 2**63 - 1
MAX_POSITIONS = 20


def _id(**kwargs):
    return StrictIntegerField(min_value=1, max_value=MAX_ID, allow_null=True, **kwargs)


def _count(maximum: int, **kwargs):
    return StrictIntegerField(min_value=0, max_value=maximum, allow_null=True, **kwargs)


def _float(**kwargs):
    return serializers.FloatField(min_value=-1e6, max_value=1e6, allow_null=True, **kwargs)


class RuleInSerializer(serializers.Serializer):
    name = StrictCharField(max_length=120)
    kind = StrictChoiceField(choices=Rule.Kind.choices)
    active = serializers.BooleanField(required=False)
    starts_at = serializers.DateTimeField(required=False, allow_null=True)
    ends_at = serializers.DateTimeField(required=False, allow_null=True)
    target = StrictChoiceField(choices=Rule.Target.choices, required=False, allow_blank=True)
    target_id = _id(required=False)
    keyword = StrictCharField(max_length=100, required=False, allow_blank=True)
    mode = StrictChoiceField(choices=Rule.Mode.choices, required=False, allow_blank=True)
    value = _float(required=False)
    provider_id = _id(required=False)
    item_ids = serializers.ListField(
        child=StrictIntegerField(min_value=1, max_value=MAX_ID),
        max_length=MAX_ITEMS,
        required=False,
    )
    budget = _count(10**9, required=False)
    positions = serializers.ListField(
        child=StrictIntegerField(min_value=0, max_value=1000),
        max_length=MAX_POSITIONS,
        required=False,
    )
    user_cap_per_day = _count(10**6, required=False)
    relevance_floor = _float(required=False)
    max_per_provider = _count(1000, required=False)
    max_per_category = _count(1000, required=False)
    mmr_lambda = _float(required=False)


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
