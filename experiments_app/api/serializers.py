"""Input and output shapes of the staff experiments API.

The inputs check JSON types and bounds only (lengths, list sizes, the size of a variant's
config): every rule about what makes an experiment valid (weights summing to 100, one control,
targeting, known metrics, what may change once running) is the services' (services/
validation.py and lifecycle.py), which answer with ``InvalidInput`` or ``Conflict``. The
schema states the same bounds, and the slug and targeting shapes the services enforce, so a
schema-valid request is refused only for a rule no schema can carry.
"""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from experiments_app.models import GUARDRAIL_METRICS, Experiment, Layer, Metric, Variant
from experiments_app.services.validation import PLATFORMS, VariantSpec
from features_app import public as features
from inbo.api.fields import StrictCharField, StrictChoiceField, StrictIntegerField

MAX_VARIANTS = 8
MAX_HYPOTHESIS = 2000
MAX_DESCRIPTION = 1000
MAX_STOP_REASON = 300  # Experiment.stop_reason
MAX_NEW_USERS_DAYS = 3650  # validation.validate_targeting
# The services' slug rule (validation._SLUG, held equal by a test), written for the schema.
KEY_PATTERN = "^[a-z0-9][a-z0-9_-]{0,63}$"
_KEY = re.compile(KEY_PATTERN[1:-1])
# Routed before ``experiments/<key>/``: an experiment with this key could not be read.
RESERVED_KEYS = ("layers",)

# Required text: no NUL (PostgreSQL text cannot hold one) and at least one character that is
# not whitespace as Python's str.strip() sees it (the schema and the services agree on what
# "blank" is).
_WHITESPACE = (
    "\\t\\n\\u000b\\f\\r \\u001c-\\u001f\\u0085\\u00a0\\u1680\\u2000-\\u200a"
    "\\u2028\\u2029\\u202f\\u205f\\u3000"
)
NOT_BLANK_PATTERN = f"^[^\\u0000]*[^\\u0000{_WHITESPACE}][^\\u0000]*$"


@extend_schema_field({"type": "string", "pattern": KEY_PATTERN, "minLength": 1, "maxLength": 64})
class KeyField(StrictCharField):
    """A key (a slug of lowercase letters, digits, ``-`` and ``_``) matched whole: no
    whitespace trimmed, no trailing newline let through."""

    default_error_messages = {
        "bad_key": "Lowercase letters, digits, '-' and '_', starting with a letter or digit, "
        "at most 64 characters."
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, max_length=64, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not _KEY.fullmatch(value):
            self.fail("bad_key")
        return value


@extend_schema_field(
    {"type": "string", "pattern": NOT_BLANK_PATTERN, "minLength": 1, "maxLength": MAX_HYPOTHESIS}
)
class HypothesisField(StrictCharField):
    """Required free text, as given (not trimmed): no NUL, not blank."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(trim_whitespace=False, max_length=MAX_HYPOTHESIS, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)  # NUL and lone surrogates refused after this
        if not value.strip():
            self.fail("blank")
        return value


# What PostgreSQL text cannot hold: NUL, and lone surrogates (not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class NoteField(StrictCharField):
    """Optional free text (may be empty), cleaned rather than refused: NUL and lone
    surrogates are dropped."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_blank=True, trim_whitespace=False, **kwargs)
        self.validators = [
            v
            for v in self.validators
            if not isinstance(
                v, ProhibitNullCharactersValidator | ProhibitSurrogateCharactersValidator
            )
        ]

    def to_internal_value(self, data: Any) -> str:
        return _UNSTORABLE.sub("", super().to_internal_value(data))


@extend_schema_field({"type": "boolean"})
class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean: no ``"true"``, no ``1``."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class _JSONObjectField(serializers.Field):
    """A JSON object, passed on as a dict for the services to judge."""

    default_error_messages = {"not_an_object": "Must be a JSON object."}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            self.fail("not_an_object")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            "new_users_days": {"type": "integer", "minimum": 1, "maximum": MAX_NEW_USERS_DAYS},
            "segment": {"type": "string", "enum": list(features.ENGAGEMENT_SEGMENTS)},
            "platform": {"type": "string", "enum": list(PLATFORMS)},
        },
        "additionalProperties": False,
        "description": "Who may enter; empty: everyone. All rules given must match.",
    }
)
class TargetingField(_JSONObjectField):
    """Targeting rules; their names and values are checked by ``validate_targeting``."""


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {},
        "description": "What the variant changes in the feed, checked by the services "
        "(docs/EXPERIMENTS.md: its keys, their values, at most 4 KB as JSON).",
    }
)
class ConfigField(_JSONObjectField):
    """A variant's config, judged by ``validate_config``. Only what PostgreSQL's jsonb cannot
    store is refused here: NUL in text and lone surrogates (both valid JSON escapes)."""

    default_error_messages = {
        **_JSONObjectField.default_error_messages,
        "not_storable": "Text in the config must not contain NUL or lone surrogates.",
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        text = json.dumps(value, ensure_ascii=False)  # infinity is validate_config's
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("not_storable")
        if "\\u0000" in text:
            self.fail("not_storable")
        return value


@extend_schema_field(
    {
        "type": "array",
        "items": {"type": "string", "enum": list(GUARDRAIL_METRICS)},
        "uniqueItems": True,
        "maxItems": len(GUARDRAIL_METRICS),
        "description": "Metrics the experiment must not harm.",
    }
)
class GuardrailsField(serializers.ListField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            child=StrictChoiceField(choices=list(GUARDRAIL_METRICS)),
            max_length=len(GUARDRAIL_METRICS),
            **kwargs,
        )


def primary_metric_field(**kwargs: Any) -> StrictChoiceField:
    return StrictChoiceField(
        choices=Metric.choices, help_text="What the experiment is judged by.", **kwargs
    )


# --- Inputs -------------------------------------------------------------------------------


class VariantInputSerializer(serializers.Serializer):
    key = KeyField()
    weight = StrictIntegerField(
        min_value=0, max_value=100, help_text="Percent of the experiment's users."
    )
    is_control = StrictBooleanField(default=False)
    config = ConfigField(required=False, default=dict)


def variants_field() -> serializers.ListField:
    return serializers.ListField(
        child=VariantInputSerializer(),
        min_length=2,
        max_length=MAX_VARIANTS,
        help_text="Two to eight variants, exactly one the control, weights summing to 100.",
    )


def variant_specs(rows: list[dict[str, Any]]) -> list[VariantSpec]:
    return [VariantSpec(**row) for row in rows]


class ExperimentCreateSerializer(serializers.Serializer):
    key = KeyField()
    hypothesis = HypothesisField()
    layer = KeyField(help_text="An existing layer's key (`GET /experiments/layers/`).")
    traffic_share = StrictIntegerField(
        min_value=1, max_value=100, default=100, help_text="Percent of the layer's users."
    )
    targeting = TargetingField(required=False, default=dict)
    primary_metric = primary_metric_field(default=Metric.HOME_CTR)
    guardrails = GuardrailsField(required=False, default=list)
    variants = variants_field()

    def validate_key(self, value: str) -> str:
        if value in RESERVED_KEYS:
            raise serializers.ValidationError(f"{value!r} is reserved (it names a route).")
        return value


class ExperimentUpdateSerializer(serializers.Serializer):
    """Every field optional (PATCH). Layer, traffic share and targeting: drafts only."""

    hypothesis = HypothesisField(required=False)
    primary_metric = primary_metric_field(required=False)
    guardrails = GuardrailsField(required=False)
    layer = KeyField(required=False, help_text="An existing layer's key; drafts only.")
    traffic_share = StrictIntegerField(
        min_value=1, max_value=100, required=False, help_text="Drafts only."
    )
    targeting = TargetingField(required=False, help_text="Drafts only.")


class VariantsReplaceSerializer(serializers.Serializer):
    variants = variants_field()


class StopSerializer(serializers.Serializer):
    reason = NoteField(
        max_length=MAX_STOP_REASON, required=False, default="", help_text="Why it stopped."
    )


class LayerCreateSerializer(serializers.Serializer):
    key = KeyField()
    description = NoteField(max_length=MAX_DESCRIPTION, required=False, default="")


# --- Outputs ------------------------------------------------------------------------------


class VariantSerializer(serializers.ModelSerializer):
    config = serializers.DictField(child=serializers.JSONField())

    class Meta:
        model = Variant
        fields = ("key", "weight", "is_control", "config")


class VariantDetailSerializer(VariantSerializer):
    exposures = serializers.SerializerMethodField(help_text="Users exposed to this variant.")

    class Meta(VariantSerializer.Meta):
        fields = (*VariantSerializer.Meta.fields, "exposures")

    def get_exposures(self, variant: Variant) -> int:
        return int(self.context["exposures"].get(variant.pk, 0))


class ExperimentSerializer(serializers.ModelSerializer):
    layer = serializers.SlugRelatedField(slug_field="key", read_only=True)
    targeting = serializers.DictField(child=serializers.JSONField())
    guardrails = serializers.ListField(child=serializers.CharField())
    variants = VariantSerializer(many=True, read_only=True)

    class Meta:
        model = Experiment
        fields = (
            "key",
            "hypothesis",
            "layer",
            "status",
            "traffic_share",
            "layer_slot_start",
            "layer_slot_end",
            "targeting",
            "primary_metric",
            "guardrails",
            "variants",
            "started_at",
            "stopped_at",
            "stop_reason",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


class ExperimentDetailSerializer(ExperimentSerializer):
    """One experiment with the users exposed to each variant (``context["exposures"]``:
    counts by variant id)."""

    variants = serializers.SerializerMethodField()
    exposures = serializers.SerializerMethodField(help_text="Users exposed, all variants.")

    class Meta(ExperimentSerializer.Meta):
        fields = (*ExperimentSerializer.Meta.fields, "exposures")
        read_only_fields = fields

    @extend_schema_field(VariantDetailSerializer(many=True))
    def get_variants(self, experiment: Experiment) -> list[dict[str, Any]]:
        return list(
            VariantDetailSerializer(experiment.variants.all(), many=True, context=self.context).data
        )

    def get_exposures(self, experiment: Experiment) -> int:
        return int(sum(self.context["exposures"].values()))


class LayerSerializer(serializers.ModelSerializer):
    running_experiments = serializers.IntegerField(read_only=True)

    class Meta:
        model = Layer
        fields = ("key", "description", "running_experiments", "created_at")
        read_only_fields = fields


class StatusParamsSerializer(serializers.Serializer):
    status = StrictChoiceField(
        choices=Experiment.Status.choices, required=False, help_text="Only experiments in it."
    )
