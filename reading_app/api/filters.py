"""Query-string filters of the catalog endpoints; bad values answer 400 naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, time

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import extend_schema_field
from rest_framework.exceptions import ValidationError

from inbo.api.dates import clamp
from inbo.api.schema import BOOLEAN_OR_EMPTY, DATE_OR_DATETIME_OR_EMPTY
from reading_app.models import Category, Item, Provider, Subscription


def _by_category(queryset: QuerySet, name: str, value: str) -> QuerySet:
    """Match the category itself or any of its subcategories (no join, no DISTINCT)."""
    matching = Category.objects.filter(Q(slug=value) | Q(parent__slug=value))
    through = queryset.model.categories.through
    owner = "provider_id" if queryset.model is Provider else "item_id"
    return queryset.filter(id__in=through.objects.filter(category__in=matching).values(owner))


@extend_schema_field(DATE_OR_DATETIME_OR_EMPTY)
class DateOrDateTimeFilter(django_filters.Filter):
    """Accepts ``2026-11-01`` (midnight UTC) or a full ISO 8601 date-time; empty means no
    filter, as for every catalog filter."""

    field_class = forms.CharField

    def filter(self, qs: QuerySet, value: str) -> QuerySet:
        if not value:
            return qs
        try:
            parsed = parse_datetime(value)
            day = parse_date(value) if parsed is None and len(value) == 10 else None
        except ValueError:  # well-formed but impossible, e.g. month 13
            parsed = day = None
        if parsed is None:
            if day is None:
                raise ValidationError(
                    {self.field_name: ["Use a date (YYYY-MM-DD) or an ISO 8601 date-time."]}
                )
            parsed = datetime.combine(day, time.min, tzinfo=UTC)
        # In UTC and within 1970..2100: PostgreSQL refuses offsets beyond ±15:59 that
        # Python accepts, and far years overflow when an offset is applied.
        parsed = clamp(parsed)
        return qs.filter(**{f"published_at__{self.lookup_expr}": parsed})


@extend_schema_field({"type": "string", "pattern": "^[^\\x00]*$"})
class TextFilter(django_filters.CharFilter):
    """Text matched exactly; a NUL character is a 400 (PostgreSQL cannot hold one), and the
    schema says so."""


@extend_schema_field(BOOLEAN_OR_EMPTY)
class StrictBooleanFilter(django_filters.TypedChoiceFilter):
    """``true`` or ``false`` only; the schema says boolean (sent as those two words); empty
    means no filter, as for every catalog filter."""


class ProviderFilter(django_filters.FilterSet):
    category = TextFilter(method=_by_category, help_text="Category slug")
    language = TextFilter()
    country = TextFilter()
    # Strict: "maybe" is a 400 naming the field, not silently ignored.
    is_sponsored = StrictBooleanFilter(
        choices=[("true", "true"), ("false", "false")], coerce=lambda v: v == "true"
    )

    class Meta:
        model = Provider
        fields = ("category", "language", "country", "is_sponsored")


class ItemFilter(django_filters.FilterSet):
    provider = TextFilter(field_name="provider__slug", help_text="Provider slug")
    category = TextFilter(method=_by_category, help_text="Category slug")
    language = TextFilter()
    published_after = DateOrDateTimeFilter(field_name="published_after", lookup_expr="gte")
    published_before = DateOrDateTimeFilter(field_name="published_before", lookup_expr="lt")

    class Meta:
        model = Item
        fields = ("provider", "category", "language", "published_after", "published_before")


@extend_schema_field(
    {"type": "string", "enum": [*Subscription.Status.values, ""], "example": "active"}
)
class StatusFilter(django_filters.ChoiceFilter):
    """One of the subscription statuses (anything else is a 400 naming the field); empty
    means no filter, as for every filter, and the schema says so."""


class SubscriptionFilter(django_filters.FilterSet):
    status = StatusFilter(choices=Subscription.Status.choices)

    class Meta:
        model = Subscription
        fields = ("status",)
