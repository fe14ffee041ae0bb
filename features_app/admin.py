from django.contrib import admin
from django.utils import timezone

from features_app.models import (
    CounterQuarantine,
    CounterSnapshot,
    ItemEmbedding,
    ItemFeature,
    ProviderEmbedding,
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
