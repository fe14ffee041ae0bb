from django.contrib import admin

from features_app.models import UserEvent


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
