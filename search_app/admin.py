"""Admin: the indexing outbox (dead letters and their retry), search logs and analytics."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.dateparse import parse_date

from search_app import selectors
from search_app.models import SearchClick, SearchLog, SearchOutbox
from search_app.services import outbox


@admin.register(SearchOutbox)
class SearchOutboxAdmin(admin.ModelAdmin):
    """Changes on their way to the indexes; ``dead`` rows are the dead letters."""

    list_display = (
        "doc_type",
        "object_id",
        "op",
        "status",
        "attempts",
        "next_attempt_at",
        "changed_at",
        "short_error",
    )
    list_filter = ("status", "doc_type", "op")
    search_fields = ("=object_id", "last_error", "task_ref")
    readonly_fields = [f.name for f in SearchOutbox._meta.fields]
    actions = ["retry"]
    date_hierarchy = "created_at"

    @admin.display(description="last error")
    def short_error(self, row: SearchOutbox) -> str:
        return row.last_error[:120]

    @admin.action(description="Retry the selected failed or dead changes now")
    def retry(self, request: HttpRequest, queryset: QuerySet[SearchOutbox]) -> None:
        retried = outbox.retry(list(queryset.values_list("id", flat=True)))
        self.message_user(request, f"{retried} change(s) queued again.", messages.SUCCESS)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class SearchClickInline(admin.TabularInline):
    model = SearchClick
    extra = 0
    can_delete = False
    readonly_fields = ("object_id", "position", "created_at")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _period(request: HttpRequest) -> tuple[datetime, datetime]:
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (to inclusive); default: the last 7 days."""
    today = timezone.now().date()
    start = parse_date(request.GET.get("from", "") or "") or today - timedelta(days=6)
    end = parse_date(request.GET.get("to", "") or "") or today
    tz = timezone.get_current_timezone()
    return (
        datetime.combine(start, time.min, tzinfo=tz),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=tz),
    )


@admin.register(SearchLog)
class SearchLogAdmin(admin.ModelAdmin):
    """Every search; the "Analytics" page sums them up (same figures as the API)."""

    list_display = (
        "created_at",
        "query",
        "doc_type",
        "result_count",
        "backend",
        "degraded",
        "latency_ms",
        "page",
        "user",
    )
    list_filter = ("backend", "degraded", "doc_type", "sort", "created_at")
    search_fields = ("=query", "=search_id")
    date_hierarchy = "created_at"
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    readonly_fields = [f.name for f in SearchLog._meta.fields]
    inlines = [SearchClickInline]
    show_full_result_count = False
    change_list_template = "admin/search_app/searchlog/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self):
        summary = path(
            "analytics/",
            self.admin_site.admin_view(self.analytics_view),
            name="search_app_searchlog_analytics",
        )
        return [summary, *super().get_urls()]

    def analytics_view(self, request: HttpRequest) -> TemplateResponse:
        date_from, date_to = _period(request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Search analytics",
            "summary": selectors.analytics_summary(date_from, date_to),
            "date_from": date_from.date(),
            "date_to": (date_to - timedelta(days=1)).date(),
        }
        return TemplateResponse(request, "admin/search_app/searchlog/analytics.html", context)
