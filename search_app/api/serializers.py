"""Input and output shapes of the search API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.core.validators import ProhibitNullCharactersValidator
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

from inbo.api.dates import EARLIEST, LATEST, clamp
from inbo.api.fields import StrictIntegerField, StrictUUIDField
from inbo.api.pagination import page_field, page_size_field
from inbo.api.schema import DATE_OR_DATETIME
from reading_app import public as reading
from reading_app.contracts import CatalogKind
from search_app.contracts import Sort
from search_app.services.query import MAX_QUERY_CHARS, normalize_query

MAX_PAGE_SIZE = 50
# Deepest result reachable by paging (page x page_size): deep pages cost the engine the
# whole prefix; nobody reads result 1,001.
MAX_RESULT_WINDOW = 1000


class QueryTextField(serializers.CharField):
    """Free text that is normalized, never refused for what it contains: NUL bytes and lone
    surrogates are dropped (DRF would reject them), long text is cut."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        self.validators = [
            v
            for v in self.validators
            if not isinstance(
                v, ProhibitNullCharactersValidator | ProhibitSurrogateCharactersValidator
            )
        ]

    def to_internal_value(self, data: Any) -> str:
        return normalize_query(super().to_internal_value(data))


@dataclass(frozen=True, slots=True)
class Span:
    """What a date or date-time names: a whole day, or an instant (start == end)."""

    start: datetime
    end: datetime  # exclusive


@extend_schema_field(DATE_OR_DATETIME)
class DateOrDateTimeField(serializers.Field):
    """``YYYY-MM-DD`` (a whole UTC day) or an ISO 8601 date-time (UTC when it has no
    offset), as a :class:`Span`, clamped to 1970-01-01..2100-12-31."""

    default_error_messages = {"invalid": "Use YYYY-MM-DD or an ISO 8601 date-time."}

    def to_internal_value(self, data: Any) -> Span:
        text = str(data).strip()
        try:
            # A date alone first: parse_datetime would also read it, as midnight.
            day = parse_date(text) if len(text) == 10 else None
            moment = None if day else parse_datetime(text)
        except ValueError:  # well-formed but impossible: month 13, offset +25:00
            self.fail("invalid")
        if day is not None:
            if not EARLIEST.year <= day.year < LATEST.year:
                edge = EARLIEST if day.year < EARLIEST.year else LATEST
                return Span(edge, edge)
            start = datetime.combine(day, time.min, tzinfo=UTC)
            return Span(start, start + timedelta(days=1))
        if moment is None:
            self.fail("invalid")
        moment = clamp(moment)
        return Span(moment, moment)

    def to_representation(self, value: Span) -> str:
        return value.start.isoformat()


class BoundedDateField(serializers.DateField):
    """A day (``YYYY-MM-DD``) clamped to 1970-01-01..2100-12-31 (see ``clamp``)."""

    def to_internal_value(self, value: Any) -> date:
        day = super().to_internal_value(value)
        return min(max(day, EARLIEST.date()), LATEST.date() - timedelta(days=1))


class SearchParamsSerializer(serializers.Serializer):
    q = QueryTextField(
        required=False,
        default="",
        help_text='Search text (websearch syntax: `"a phrase"`, `-word`, `or`); the last '
        "word also matches as a prefix. Normalized (NFKC, control and invisible characters "
        f"dropped, spaces collapsed) and cut to {MAX_QUERY_CHARS} characters. Empty: "
        "everything that passes the filters, newest first.",
    )
    type = serializers.ChoiceField(
        choices=[t.value for t in CatalogKind],
        default=CatalogKind.ITEMS.value,
        help_text="What to find.",
    )
    category = serializers.SlugField(
        max_length=140,
        required=False,
        help_text="Category slug; a top-level category includes its subcategories.",
    )
    provider = serializers.SlugField(
        max_length=220, required=False, help_text="Provider slug (items only)."
    )
    language = serializers.RegexField(
        r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$",
        max_length=8,
        required=False,
        help_text="Language code, e.g. `en`.",
    )
    # "from" is a Python keyword: the fields are declared under these names below.
    sort = serializers.ChoiceField(
        choices=[s.value for s in Sort],
        default=Sort.RELEVANCE.value,
        help_text="`relevance` (newest for an empty query) or `newest`.",
    )
    page = page_field(
        maximum=MAX_RESULT_WINDOW,
        default=1,
        help_text=f"Page number, from 1. Only the first {MAX_RESULT_WINDOW} results are "
        "served: a page past them (or past the last result) is empty; `total` still counts "
        "every match.",
    )
    page_size = page_size_field(maximum=MAX_PAGE_SIZE, default=20)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = DateOrDateTimeField(
            required=False,
            help_text="Published at or after (items only). Dates before 1970 or after 2100 "
            "are read as the edge of that range.",
        )
        fields["to"] = DateOrDateTimeField(
            required=False,
            help_text="Published before; a date alone includes that day, so `from` = `to` is "
            "one day (items only). Clamped like `from`.",
        )
        return fields

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        if attrs["type"] == CatalogKind.PROVIDERS.value:
            for name in ("provider", "from", "to"):
                if attrs.get(name) is not None:
                    errors[name] = ["Only for type=items."]
        start, end = attrs.get("from"), attrs.get("to")
        # Refused only when `to` lies wholly before `from`; `from` = `to` is a valid range
        # (a day for dates, empty for one instant).
        if start and end and end.start < start.start and end.end <= start.start:
            errors["to"] = ["Must not be before `from`."]
        if errors:
            raise serializers.ValidationError(errors)
        if attrs.get("language"):
            attrs["language"] = attrs["language"].lower()
        return attrs


class HighlightsSerializer(serializers.Serializer):
    title = serializers.CharField(required=False)
    summary = serializers.CharField(required=False)
    body = serializers.CharField(required=False)


class SearchHitSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["item", "provider"])
    id = serializers.IntegerField()
    position = serializers.IntegerField(help_text="1-based rank over all pages (for clicks).")
    score = serializers.FloatField(help_text="Relevance; comparable within one response only.")
    highlights = HighlightsSerializer(
        help_text="Fields that matched, HTML-escaped, with `<mark>…</mark>` around matches."
    )
    item = reading.ItemCardSerializer(allow_null=True, help_text="For type=item.")
    provider = reading.ProviderCardSerializer(allow_null=True, help_text="For type=provider.")


class FacetsSerializer(serializers.Serializer):
    category = serializers.DictField(child=serializers.IntegerField())
    provider = serializers.DictField(child=serializers.IntegerField(), required=False)
    language = serializers.DictField(child=serializers.IntegerField())


class SearchResponseSerializer(serializers.Serializer):
    search_id = serializers.UUIDField(help_text="Send it back with clicks on results.")
    query = serializers.CharField(help_text="The query as searched (normalized).")
    corrected_query = serializers.CharField(
        allow_null=True, help_text="The query after typo correction, when words were corrected."
    )
    backend = serializers.CharField(help_text="`postgres` or `meilisearch`.")
    degraded = serializers.BooleanField(
        help_text="True when the configured engine was down and PostgreSQL answered."
    )
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()
    facets = FacetsSerializer(help_text="Counts per value over the filtered set (top 100).")
    results = SearchHitSerializer(many=True)


class ClickSerializer(serializers.Serializer):
    search_id = StrictUUIDField()
    id = StrictIntegerField(min_value=1, help_text="The clicked result's id.")
    position = StrictIntegerField(
        min_value=1, max_value=MAX_RESULT_WINDOW, help_text="Its 1-based `position`."
    )


class ClickResultSerializer(serializers.Serializer):
    recorded = serializers.BooleanField(help_text="False when this click was already recorded.")


class AnalyticsParamsSerializer(serializers.Serializer):
    def get_fields(self) -> dict[str, serializers.Field]:
        return {
            "from": BoundedDateField(
                required=False,
                help_text="First day (UTC); default: 6 days before `to`. Days outside "
                "1970-01-01..2100-12-31 are read as the edge of that range.",
            ),
            "to": BoundedDateField(
                required=False,
                help_text="Last day, included (UTC); default: today. Clamped like `from`.",
            ),
        }

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        end = attrs.get("to") or datetime.now(tz=UTC).date()
        start = attrs.get("from") or end - timedelta(days=6)
        if start > end:
            raise serializers.ValidationError({"from": ["Must not be after `to`."]})
        if (end - start).days > 366:
            raise serializers.ValidationError({"from": ["At most 366 days at a time."]})
        return {
            "from": datetime.combine(start, time.min, tzinfo=UTC),
            "to": datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
        }


class TopQuerySerializer(serializers.Serializer):
    query = serializers.CharField()
    searches = serializers.IntegerField()
    click_through_rate = serializers.FloatField()
    mean_results = serializers.FloatField()


class ZeroResultQuerySerializer(serializers.Serializer):
    query = serializers.CharField()
    searches = serializers.IntegerField()


class AnalyticsSerializer(serializers.Serializer):
    date_from = serializers.DateTimeField()
    date_to = serializers.DateTimeField(help_text="Exclusive.")
    searches = serializers.IntegerField(help_text="Result pages served.")
    searches_with_clicks = serializers.IntegerField()
    click_through_rate = serializers.FloatField(
        allow_null=True, help_text="Share of result pages with at least one click."
    )
    clicks = serializers.IntegerField()
    mean_click_position = serializers.FloatField(allow_null=True)
    zero_result_searches = serializers.IntegerField()
    degraded_searches = serializers.IntegerField()
    mean_latency_ms = serializers.FloatField(allow_null=True)
    top_queries = TopQuerySerializer(many=True, help_text="First pages, most searched first.")
    zero_result_queries = ZeroResultQuerySerializer(many=True)
