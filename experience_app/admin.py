from django.contrib import admin

from experience_app.models import ExperienceInteraction, ServedFeed, UserInterest


@admin.register(UserInterest)
class UserInterestAdmin(admin.ModelAdmin):
    list_display = ("user", "category", "created_at")
    search_fields = ("user__username", "category__name")
    list_select_related = ("user", "category")
    raw_id_fields = ("user", "category")


@admin.register(ExperienceInteraction)
class ExperienceInteractionAdmin(admin.ModelAdmin):
    """Read-only: interactions are facts reported by clients."""

    list_display = ("occurred_at", "user", "interaction_type", "item", "section", "position")
    list_filter = ("interaction_type", "section", "occurred_at")
    search_fields = ("user__username", "item__title", "=event_id", "=request_id")
    list_select_related = ("user", "item")
    date_hierarchy = "occurred_at"
    raw_id_fields = ("user", "item")
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ServedFeed)
class ServedFeedAdmin(admin.ModelAdmin):
    """What each home response showed, with the signals every item was ranked on."""

    list_display = ("served_at", "user", "request_id", "degraded")
    list_filter = ("degraded", "served_at")
    search_fields = ("user__username", "=request_id")
    list_select_related = ("user",)
    date_hierarchy = "served_at"
    raw_id_fields = ("user",)
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False
