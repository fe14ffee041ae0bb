from datetime import timedelta

from django.contrib import admin
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.safestring import mark_safe

from features_app.charts import lines_svg
from features_app.contracts import Engagement
from features_app.models import (
    CounterQuarantine,
    CounterSnapshot,
    DetachedMonth,
    ItemEmbedding,
    ItemFeature,
    ProviderEmbedding,
    SegmentAssignment,
    SegmentSize,
    UserEmbedding,
    UserEvent,
)


@admin.register(UserEvent)
class UserEventAdmin(admin.ModelAdmin):
    """Read-only view of the event log: events are facts, never edited."""

    list_display = ("occurred_at", "user", "event_type", "item", "source")
    list_filter = ("event_type", "source", "occurred_at")
    search_fields = ("user__username", "item__title", "=event_id")
    list_select_related = ("user", "item")
    date_hierarchy = "occurred_at"
    raw_id_fields = ("user", "item")
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ItemFeature)
class ItemFeatureAdmin(admin.ModelAdmin):
    """Durable counters per item (written by the sync and reconcile jobs only)."""

    list_display = ("item", "impressions", "clicks", "reads", "saves", "ctr", "synced_at")
    search_fields = ("item__title", "=item__id")
    list_select_related = ("item",)
    raw_id_fields = ("item",)
    readonly_fields = [f.name for f in ItemFeature._meta.fields]
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CounterQuarantine)
class CounterQuarantineAdmin(admin.ModelAdmin):
    """Counter values that failed validation and were kept out of ItemFeature."""

    list_display = ("detected_at", "item", "counter", "value", "previous", "reason", "resolved_at")
    list_filter = ("reason", "counter", ("resolved_at", admin.EmptyFieldListFilter))
    search_fields = ("item__title", "=item__id")
    list_select_related = ("item",)
    raw_id_fields = ("item",)
    date_hierarchy = "detected_at"
    actions = ["mark_resolved"]

    @admin.action(description="Mark as resolved")
    def mark_resolved(self, request, queryset):
        updated = queryset.filter(resolved_at__isnull=True).update(resolved_at=timezone.now())
        self.message_user(request, f"{updated} marked as resolved.")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CounterSnapshot)
class CounterSnapshotAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "key_count", "size_bytes", "last_event_id", "complete")
    list_filter = ("complete",)
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "key_count", "size_bytes", "last_event_id", "complete")

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(DetachedMonth)
class DetachedMonthAdmin(admin.ModelAdmin):
    """Event-log months detached with their baselines (ADR 0026): listed, never edited here
    (deleting one while its table is attached again is the only reason to touch it)."""

    list_display = ("table", "month", "rows", "min_event_id", "max_event_id", "detached_at")
    date_hierarchy = "detached_at"
    readonly_fields = ("table", "month", "rows", "min_event_id", "max_event_id", "detached_at")

    def has_add_permission(self, request) -> bool:
        return False


class _EmbeddingAdmin(admin.ModelAdmin):
    """Vectors are written by the embedding jobs only: listed, never edited."""

    list_filter = ("model_version",)
    date_hierarchy = "updated_at"
    exclude = ("vector",)
    show_full_result_count = False

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "vector"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ItemEmbedding)
class ItemEmbeddingAdmin(_EmbeddingAdmin):
    list_display = ("item", "model_version", "updated_at")
    list_select_related = ("item",)
    search_fields = ("=item__id",)


@admin.register(ProviderEmbedding)
class ProviderEmbeddingAdmin(_EmbeddingAdmin):
    list_display = ("provider", "model_version", "item_count", "updated_at")
    list_select_related = ("provider",)


@admin.register(UserEmbedding)
class UserEmbeddingAdmin(_EmbeddingAdmin):
    list_display = ("user", "model_version", "item_count", "updated_at")
    list_select_related = ("user",)
    search_fields = ("=user__id",)


# --- Segments (written by the segmentation job only) -----------------------------------


class _ClusterFilter(admin.SimpleListFilter):
    """Interest clusters by their words (the current run's labels)."""

    title = "interest cluster"
    parameter_name = "cluster"

    def lookups(self, request, model_admin):
        clusters = (
            SegmentAssignment.objects.exclude(cluster=None)
            .order_by("cluster")
            .values_list("cluster", "cluster_label")
            .distinct()
        )
        return [("none", "No taste yet"), *((str(c), f"{c}: {label}") for c, label in clusters)]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "none":
            return queryset.filter(cluster=None)
        if value is not None and value.isdigit() and len(value) < 6:
            return queryset.filter(cluster=int(value))
        return queryset


@admin.register(SegmentAssignment)
class SegmentAssignmentAdmin(admin.ModelAdmin):
    """Each user's current segments, with the figures they came from (read-only)."""

    list_display = (
        "user",
        "engagement",
        "cluster",
        "cluster_label",
        "active_days",
        "depth",
        "last_active_at",
        "computed_at",
    )
    list_filter = ("engagement", _ClusterFilter)
    search_fields = ("user__username", "=user__id")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


SIZES_TEMPLATE = "admin/features_app/segmentsize/sizes.html"
SIZES_DAYS = (7, 30, 90, 365)


@admin.register(SegmentSize)
class SegmentSizeAdmin(admin.ModelAdmin):
    """Segment sizes over time: a table and a line chart per kind (``?kind=``, ``?days=``)
    instead of the plain list."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            return super().changelist_view(request, extra_context)  # answers 403
        kind = request.GET.get("kind")
        if kind not in SegmentSize.Kind.values:
            kind = SegmentSize.Kind.ENGAGEMENT
        raw_days = request.GET.get("days", "")
        days = int(raw_days) if raw_days.isdigit() and int(raw_days) in SIZES_DAYS else 30
        since = timezone.now().date() - timedelta(days=days)
        rows = list(
            SegmentSize.objects.filter(kind=kind, day__gte=since)
            .order_by("day", "key")
            .values_list("day", "key", "label", "users")
        )
        if kind == SegmentSize.Kind.ENGAGEMENT:
            names = {e.value: e.value for e in Engagement}
        else:
            # A cluster's latest label names its column and its line.
            names = {}
            for _, key, label, _ in rows:
                names[key] = f"{key}: {label}" if label else key
            names = dict(sorted(names.items(), key=lambda kv: int(kv[0])))
        by_day: dict = {}
        series: dict[str, list] = {name: [] for name in names.values()}
        for day, key, _, users in rows:
            by_day.setdefault(day, {})[key] = users
            if key in names:
                series[names[key]].append((day, float(users)))
        table = [
            (day, [by_day[day].get(key, 0) for key in names])
            for day in sorted(by_day, reverse=True)
        ]
        title = "Users per engagement segment" if kind == "engagement" else "Users per cluster"
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Segment sizes over time",
            "kind": kind,
            "kinds": SegmentSize.Kind.choices,
            "days": days,
            "day_choices": SIZES_DAYS,
            "columns": list(names.values()),
            "table": table,
            # lines_svg escapes every text it writes and formats every number itself.
            "chart": mark_safe(lines_svg(series, title=title)),
            **(extra_context or {}),
        }
        return TemplateResponse(request, SIZES_TEMPLATE, context)
