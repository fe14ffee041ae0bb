"""Routes of the experiments API (staff only), under /api/v1/."""

from __future__ import annotations

from django.urls import path

from experiments_app.api import reports, views

urlpatterns: list = [
    path("experiments/", views.ExperimentListView.as_view(), name="experiments"),
    # Before experiments/<key>/: "layers" is a reserved experiment key.
    path("experiments/layers/", views.LayerListView.as_view(), name="experiment-layers"),
    path("experiments/<slug:key>/", views.ExperimentDetailView.as_view(), name="experiment-detail"),
    path(
        "experiments/<slug:key>/variants/",
        views.ExperimentVariantsView.as_view(),
        name="experiment-variants",
    ),
    path(
        "experiments/<slug:key>/start/",
        views.ExperimentStartView.as_view(),
        name="experiment-start",
    ),
    path(
        "experiments/<slug:key>/stop/", views.ExperimentStopView.as_view(), name="experiment-stop"
    ),
    path(
        "experiments/<slug:key>/report/",
        reports.ExperimentReportView.as_view(),
        name="experiment-report",
    ),
]
