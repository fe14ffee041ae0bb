"""Experiments in the admin: drafts are edited here (validated as the services validate);
start and stop are actions that call the lifecycle services. Once an experiment has started
its allocation and its variants are read-only; exposures are a read-only log."""

from __future__ import annotations

from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import path

from experiments_app import admin_report
from experiments_app.models import (
    Bandit,
    BanditSnapshot,
    Decision,
    Experiment,
    Exposure,
    Layer,
    Variant,
)
from experiments_app.services import decisions, lifecycle
from experiments_app.services.validation import (
    VariantSpec,
    validate_key,
    validate_metrics,
    validate_targeting,
    validate_traffic_share,
    validate_variants,
)
from inbo.errors import ApplicationError, InvalidInput


def _as_validation_error(exc: InvalidInput) -> ValidationError:
    return ValidationError(exc.message)


@admin.register(Layer)
class LayerAdmin(admin.ModelAdmin):
    list_display = ("key", "description", "created_at")
    search_fields = ("key", "description")
    readonly_fields = ("created_at",)

    def get_readonly_fields(self, request, obj: Layer | None = None) -> tuple[str, ...]:
        # A layer's salt decides who is in which experiment: fixed once it has any.
        if obj is not None and obj.experiments.exclude(status=Experiment.Status.DRAFT).exists():
            return ("salt", "created_at")
        return ("created_at",)


class VariantFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        # A started experiment's variants are shown read-only: nothing was posted to check.
        if any(self.errors) or self.instance.status != Experiment.Status.DRAFT:
            return
        specs = [
            VariantSpec(
                key=form.cleaned_data["key"],
                weight=form.cleaned_data["weight"],
                is_control=form.cleaned_data.get("is_control", False),
                config=form.cleaned_data.get("config") or {},
            )
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        try:
            validate_variants(specs)
        except InvalidInput as exc:
            raise _as_validation_error(exc) from None


class VariantInline(admin.TabularInline):
    model = Variant
    formset = VariantFormSet
    extra = 0
    min_num = 2
    fields = ("key", "weight", "is_control", "config")

    def _draft(self, obj: Experiment | None) -> bool:
        return obj is None or obj.status == Experiment.Status.DRAFT

    def has_add_permission(self, request, obj: Any = None) -> bool:
        return self._draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj: Any = None) -> bool:
        return self._draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj: Any = None) -> bool:
        return self._draft(obj) and super().has_delete_permission(request, obj)


class ExperimentForm(forms.ModelForm):
    class Meta:
        model = Experiment
        fields = (
            "key",
            "hypothesis",
            "layer",
            "salt",
            "traffic_share",
            "targeting",
            "primary_metric",
            "guardrails",
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        checks = {
            "traffic_share": lambda: validate_traffic_share(data["traffic_share"]),
            "targeting": lambda: validate_targeting(data["targeting"]),
            "guardrails": lambda: validate_metrics(
                data.get("primary_metric", ""), data["guardrails"] or []
            ),
        }
        # Fields read-only on a started experiment are not in the form: nothing to check.
        for name, check in checks.items():
            if name in self.fields and name in data:
                try:
                    check()
                except InvalidInput as exc:
                    self.add_error(name, exc.message)
        return data


_ALWAYS_READ_ONLY = (
    "status",
    "layer_slot_start",
    "layer_slot_end",
    "started_at",
    "stopped_at",
    "created_at",
    "updated_at",
)


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    """Experiments as data. Start and stop go through ``experiments_app.services.lifecycle``
    (slot allocation, the one-way status), exactly as ``manage.py experiment`` does."""

    form = ExperimentForm
    inlines = (VariantInline,)
    list_display = (
        "key",
        "layer",
        "status",
        "traffic_share",
        "slot",
        "primary_metric",
        "started_at",
        "stopped_at",
    )
    list_filter = ("status", "layer", "primary_metric")
    search_fields = ("key", "hypothesis")
    list_select_related = ("layer",)
    actions = ("start_selected", "stop_selected")

    def get_readonly_fields(self, request, obj: Experiment | None = None) -> tuple[str, ...]:
        if obj is not None and obj.status != Experiment.Status.DRAFT:
            return ("key", *lifecycle.ALLOCATION_FIELDS, *_ALWAYS_READ_ONLY)
        return _ALWAYS_READ_ONLY

    def has_delete_permission(self, request, obj: Experiment | None = None) -> bool:
        # A running experiment is being served (its rows are read by every feed); a stopped
        # one is the record of what was exposed. Only drafts may be deleted.
        if obj is not None and obj.status != Experiment.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="layer slot")
    def slot(self, obj: Experiment) -> str:
        if obj.layer_slot_start is None:
            return "-"
        return f"[{obj.layer_slot_start}, {obj.layer_slot_end})"

    def _each(self, request, queryset, action, done: str) -> None:
        for experiment in queryset.order_by("id"):
            try:
                action(experiment)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                self.message_user(request, f"{experiment.key} {done}.", messages.SUCCESS)

    @admin.action(description="Start the selected drafts", permissions=["change"])
    def start_selected(self, request, queryset) -> None:
        self._each(request, queryset, lifecycle.experiment_start, "is running")

    @admin.action(description="Stop the selected running experiments", permissions=["change"])
    def stop_selected(self, request, queryset) -> None:
        self._each(request, queryset, lifecycle.experiment_stop, "is stopped")

    def get_urls(self):
        # The report page (experiments_app.admin_report); the change page links to it.
        report = path(
            "<path:object_id>/report/",
            self.admin_site.admin_view(partial(admin_report.report_view, self)),
            name="experiments_app_experiment_report",
        )
        return [report, *super().get_urls()]


@admin.register(Exposure)
class ExposureAdmin(admin.ModelAdmin):
    """Read-only: exposures are logged by the serving code."""

    list_display = ("experiment", "variant", "user", "exposed_at")
    list_filter = ("experiment",)
    list_select_related = ("experiment", "variant", "user")
    raw_id_fields = ("user",)
    date_hierarchy = "exposed_at"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class BanditForm(forms.ModelForm):
    class Meta:
        model = Bandit
        fields = ("key", "kind", "arms", "params", "status")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # Kind, arms and params are read-only once created (the state is built on them).
        if self.instance.pk is None and not self.errors:
            try:
                validate_key(data["key"])
                decisions.validate_bandit(data["kind"], data["arms"], data.get("params") or {})
            except InvalidInput as exc:
                self.add_error(next(iter(exc.details), None), exc.message)
        return data


@admin.register(Bandit)
class BanditAdmin(admin.ModelAdmin):
    """Bandits that pick the home section order. Created through
    ``experiments_app.services.decisions.bandit_create`` (which writes the first snapshot);
    afterwards only the status (active / paused) changes."""

    form = BanditForm
    list_display = ("key", "kind", "status", "arm_list", "created_at")
    list_filter = ("kind", "status")
    search_fields = ("key",)

    def get_readonly_fields(self, request, obj: Bandit | None = None) -> tuple[str, ...]:
        if obj is not None:
            return ("key", "kind", "arms", "params", "created_at")
        return ("created_at",)

    @admin.display(description="arms")
    def arm_list(self, obj: Bandit) -> str:
        return ", ".join(obj.arm_keys())

    def save_model(self, request, obj: Bandit, form, change: bool) -> None:
        if change:
            obj.save(update_fields=["status"])
            return
        created = decisions.bandit_create(
            obj.key, kind=obj.kind, arms=obj.arms, params=obj.params or {}
        )
        if obj.status != created.status:
            created = decisions.bandit_set_status(created.key, obj.status)
        obj.pk, obj.created_at = created.pk, created.created_at


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(BanditSnapshot)
class BanditSnapshotAdmin(_ReadOnlyAdmin):
    """Read-only: the update task writes a snapshot with every batch of rewards."""

    list_display = ("bandit", "decisions_applied", "taken_at")
    list_filter = ("bandit",)
    list_select_related = ("bandit",)
    date_hierarchy = "taken_at"
    show_full_result_count = False


@admin.register(Decision)
class DecisionAdmin(_ReadOnlyAdmin):
    """Read-only: the feed's random choices with their propensities and rewards."""

    list_display = ("decided_at", "kind", "key", "arm", "propensity", "reward", "user")
    list_filter = ("kind", "key", ("reward", admin.EmptyFieldListFilter))
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    date_hierarchy = "decided_at"
    show_full_result_count = False
