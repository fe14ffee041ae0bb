from django.contrib import admin, messages

from experience_app.models import (
    ExperienceInteraction,
    ModelVersion,
    ReaderForget,
    ReaderMute,
    ServedFeed,
    UserInterest,
)
from experience_app.services import registry
from inbo.errors import ApplicationError


@admin.register(UserInterest)
class UserInterestAdmin(admin.ModelAdmin):
    list_display = ("user", "category", "created_at")
    search_fields = ("user__username", "category__name")
    list_select_related = ("user", "category")
    raw_id_fields = ("user", "category")


class _ReaderChoiceAdmin(admin.ModelAdmin):
    """Read-only: a reader's own choices, made through the API (which also updates the
    feature store and forgets their cached feed)."""

    list_filter = ("kind",)
    search_fields = ("user__username", "=target_id")
    list_select_related = ("user",)
    raw_id_fields = ("user",)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ReaderMute)
class ReaderMuteAdmin(_ReaderChoiceAdmin):
    list_display = ("created_at", "user", "kind", "target_id")


@admin.register(ReaderForget)
class ReaderForgetAdmin(_ReaderChoiceAdmin):
    list_display = ("at", "user", "kind", "target_id")


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

    list_display = ("served_at", "user", "request_id", "ranker", "degraded")
    list_filter = ("degraded", "ranker", "served_at")
    search_fields = ("user__username", "=request_id")
    list_select_related = ("user",)
    date_hierarchy = "served_at"
    raw_id_fields = ("user",)
    show_full_result_count = False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """The model registry: versions ml_app trained, their gate, promote and roll back.

    Versions are created by training only; an operator changes which one is active through
    the two actions, which check the gate exactly as ``manage.py model_promote`` does.
    """

    list_display = (
        "kind",
        "version",
        "status",
        "gate_summary",
        "trained_from",
        "trained_to",
        "artifact_bytes",
        "created_at",
        "promoted_at",
    )
    list_filter = ("kind", "status")
    ordering = ("kind", "-version")
    readonly_fields = [f.name for f in ModelVersion._meta.fields if f.name != "artifact"]
    exclude = ("artifact",)
    actions = ("promote_selected", "rollback_kind")

    @admin.display(description="gate")
    def gate_summary(self, obj: ModelVersion) -> str:
        gate = obj.gate or {}
        if not gate:
            return "-"
        verdict = "passed" if gate.get("passed") else "failed"
        return (
            f"{verdict}: {gate.get('metric')} {gate.get('candidate')} vs "
            f"{gate.get('baseline')} ({gate.get('baseline_name')})"
        )

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(
        description="Promote the selected candidate (checks its gate)", permissions=["change"]
    )
    def promote_selected(self, request, queryset) -> None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version.", messages.ERROR)
            return
        try:
            version = registry.promote(queryset.get().id, by=request.user.get_username())
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"{version.label} is now active.", messages.SUCCESS)

    @admin.action(
        description="Roll back the active version of the selected kind", permissions=["change"]
    )
    def rollback_kind(self, request, queryset) -> None:
        kinds = set(queryset.values_list("kind", flat=True))
        if len(kinds) != 1:
            self.message_user(request, "Select versions of one kind.", messages.ERROR)
            return
        try:
            restored = registry.rollback(kinds.pop(), by=request.user.get_username())
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        now = restored.label if restored else "the linear ranking"
        self.message_user(request, f"Rolled back: serving {now}.", messages.SUCCESS)
