"""Input and output shapes of user control: the reader's profile, settings and mutes."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from rest_framework import serializers

from experience_app.models import ReaderMute
from inbo.api.codes import COUNTRIES, LANGUAGES
from inbo.api.fields import (
    StrictCharField,
    StrictChoiceField,
    StrictIntegerField,
    StrictRegexField,
)

# Ids are PostgreSQL bigints: anything larger names nothing.
MAX_ID = 2**63 - 1


@cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


class ReaderSettingsSerializer(serializers.Serializer):
    """A partial change of the reader's settings: only the fields sent change; an empty
    string clears a country, region or language."""

    timezone = StrictCharField(
        max_length=64, required=False, help_text="IANA time zone name, e.g. `Europe/Paris`."
    )
    country = StrictRegexField(
        r"^[A-Za-z]{2}$",
        max_length=2,
        required=False,
        allow_blank=True,
        help_text="ISO 3166-1 alpha-2 code, e.g. `FR` (any case); empty clears it.",
    )
    region = StrictRegexField(
        r"^[A-Za-z0-9-]{1,16}$",
        max_length=16,
        required=False,
        allow_blank=True,
        help_text="Subdivision code within the country (letters, digits, `-`; at most 16), "
        "e.g. `NY`; needs a country; empty clears it.",
    )
    language = StrictRegexField(
        r"^[A-Za-z]{2}$",
        max_length=2,
        required=False,
        allow_blank=True,
        help_text="ISO 639-1 code, e.g. `fr` (any case); empty clears it.",
    )

    def validate_timezone(self, value: str) -> str:
        if value not in _zones():
            raise serializers.ValidationError(f"Unknown time zone {value!r}; use an IANA name.")
        return value

    def validate_country(self, value: str) -> str:
        code = value.upper()
        if code and code not in COUNTRIES:
            raise serializers.ValidationError(f"{value!r} is not an ISO 3166-1 alpha-2 code.")
        return code

    def validate_region(self, value: str) -> str:
        return value.upper()

    def validate_language(self, value: str) -> str:
        code = value.lower()
        if code and code not in LANGUAGES:
            raise serializers.ValidationError(f"{value!r} is not an ISO 639-1 code.")
        return code

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            # Refused, not ignored: a misspelt setting must not pass for a saved one.
            names = ", ".join(repr(str(name)[:40]) for name in unknown[:5])
            raise serializers.ValidationError(
                f"Unknown field(s): {names}; one of " + ", ".join(self.fields) + "."
            )
        if not attrs:
            raise serializers.ValidationError(
                "Send at least one of: " + ", ".join(self.fields) + "."
            )
        return attrs


class ReaderSettingsOutSerializer(serializers.Serializer):
    timezone = serializers.CharField()
    country = serializers.CharField(help_text="Empty: not set.")
    region = serializers.CharField(help_text="Empty: not set.")
    language = serializers.CharField(help_text="Empty: not set.")
    recommendations_reset_at = serializers.DateTimeField(
        allow_null=True, help_text="When recommendations were last reset (null: never)."
    )


class LearnedInterestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    strength = serializers.ChoiceField(
        choices=["strong", "medium", "light", "skipped"],
        help_text="Relative to the strongest learned interest; `skipped`: mostly dismissed.",
    )
    score = serializers.FloatField(help_text="The learned affinity it is ranked by.")
    summary = serializers.CharField(help_text='In words, e.g. "You read a lot about Science."')


class LearnedSerializer(serializers.Serializer):
    categories = LearnedInterestSerializer(many=True)
    providers = LearnedInterestSerializer(many=True)
    skipped_categories = LearnedInterestSerializer(many=True)
    skipped_providers = LearnedInterestSerializer(many=True)
    degraded = serializers.BooleanField(
        help_text="True when rebuilt from the event log (the live store was unreachable)."
    )


class PickedTopicSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    parent = serializers.CharField(allow_null=True)


class MuteSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ReaderMute.Kind.choices)
    id = serializers.IntegerField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()


class SegmentSerializer(serializers.Serializer):
    engagement = serializers.CharField(help_text="new, casual, regular, power or dormant.")
    engagement_summary = serializers.CharField()
    interest_cluster = serializers.CharField(allow_null=True)
    interest_cluster_summary = serializers.CharField()
    computed_at = serializers.DateTimeField()


class ReaderProfileSerializer(serializers.Serializer):
    summary = serializers.ListField(
        child=serializers.CharField(), help_text="What INBO has learned, in a few sentences."
    )
    learned = LearnedSerializer()
    picked_topics = PickedTopicSerializer(many=True, help_text="As in `/me/interests/`.")
    subscriptions = serializers.IntegerField(help_text="Providers you follow.")
    mutes = MuteSerializer(many=True)
    segment = SegmentSerializer(
        allow_null=True, help_text="Null until the nightly segmentation has placed you."
    )
    settings = ReaderSettingsOutSerializer()


class ForgottenSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ReaderMute.Kind.choices)
    id = serializers.IntegerField()
    name = serializers.CharField()
    forgotten_at = serializers.DateTimeField(
        help_text="Your events up to now no longer count towards it."
    )


class MuteInSerializer(serializers.Serializer):
    kind = StrictChoiceField(choices=ReaderMute.Kind.choices)
    id = StrictIntegerField(min_value=1, max_value=MAX_ID, help_text="Provider or category id.")


class MutesOutSerializer(serializers.Serializer):
    mutes = MuteSerializer(many=True)
    limit = serializers.IntegerField(help_text="How many mutes a reader may have.")


class ResetOutSerializer(serializers.Serializer):
    recommendations_reset_at = serializers.DateTimeField()
