"""Rules in the admin: edited without a deploy, validated as the API validates them, each
save recorded with its author (the rule's page lists its latest changes)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.utils.html import format_html, format_html_join

from inbo.errors import ApplicationError
from rules_app import pacing, selectors, services, validation
from rules_app.models import Rule, RuleVersion


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = [*validation.COMMON_FIELDS, *validation.KIND_FIELDS]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        data = {**validation.EMPTY, **cleaned}
        try:
            clean = validation.validate(data, rule_id=self.instance.pk)
        except ApplicationError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            placed = False
            for field, messages in details.items():
                if field in self.fields:
                    for message in messages:
                        self.add_error(field, message)
                    placed = True
            if not placed:
                raise forms.ValidationError(exc.message) from None
            return cleaned
        cleaned.update({k: v for k, v in clean.items() if k in self.fields})
        return cleaned


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    form = RuleForm
    list_display = ("name", "kind", "active", "starts_at", "ends_at", "updated_by", "updated_at")
    list_filter = ("kind", "active")
    search_fields = ("name", "keyword")
    readonly_fields = ("delivered", "history", "updated_by", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "active", "starts_at", "ends_at")}),
        (
            "Sponsored campaign",
            {
                "fields": (
                    "provider_id",
                    "item_ids",
                    "budget",
                    "positions",
                    "user_cap_per_day",
                    "relevance_floor",
                    "delivered",
                ),
                "description": "Positions are slots of For you's first page, from 0.",
            },
        ),
        ("Blocklist or boost", {"fields": ("target", "target_id", "keyword", "mode", "value")}),
        ("Diversity", {"fields": ("max_per_provider", "max_per_category", "mmr_lambda")}),
        ("History", {"fields": ("history", "updated_by", "created_at", "updated_at")}),
    )

    @admin.display(description="Impressions delivered")
    def delivered(self, obj: Rule) -> str:
        if obj.pk is None or obj.kind != Rule.Kind.SPONSORED:
            return "-"
        counts = pacing.delivered([obj.pk])
        if obj.pk not in counts:
            return "unknown (Redis unavailable)"
        return f"{counts[obj.pk]} of {obj.budget}"

    @admin.display(description="Changes")
    def history(self, obj: Rule) -> str:
        if obj.pk is None:
            return "-"
        rows = [
            (
                f"{v.changed_at:%Y-%m-%d %H:%M:%S}",
                v.changed_by.get_username() if v.changed_by else "-",
                v.get_action_display(),
                ", ".join(sorted(v.changes)) or "",
            )
            for v in selectors.rule_versions(obj.pk, limit=20)
        ]
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{} {} {} {}</li>", rows))

    def save_model(self, request: Any, obj: Rule, form: Any, change: bool) -> None:
        before = None
        if change and obj.pk is not None:
            stored = Rule.objects.filter(pk=obj.pk).first()
            before = services.as_data(stored) if stored else None
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)
        services.record_admin_save(obj, user=request.user, before=before)

    def delete_model(self, request: Any, obj: Rule) -> None:
        services.rule_delete(obj.pk, user=request.user)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for rule_id in list(queryset.values_list("id", flat=True)):
            services.rule_delete(rule_id, user=request.user)


@admin.register(RuleVersion)
class RuleVersionAdmin(admin.ModelAdmin):
    """Read-only: who changed which rule, when, and what."""

    list_display = ("rule_id", "action", "changed_by", "changed_at", "changed_fields")
    list_filter = ("action",)
    search_fields = ("rule_id",)
    readonly_fields = ("rule_id", "action", "changed_by", "changed_at", "data", "changes")

    @admin.display(description="Fields changed")
    def changed_fields(self, obj: RuleVersion) -> str:
        return ", ".join(sorted(obj.changes)) or "-"

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
