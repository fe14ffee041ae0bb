"""Routes of the staff rules API, under /api/v1/."""

from __future__ import annotations

from django.urls import path

from rules_app.api import views

urlpatterns: list = [
    path("rules/", views.RuleListView.as_view(), name="rules"),
    path("rules/<int:rule_id>/", views.RuleDetailView.as_view(), name="rule-detail"),
    path(
        "rules/<int:rule_id>/versions/",
        views.RuleVersionListView.as_view(),
        name="rule-versions",
    ),
]
