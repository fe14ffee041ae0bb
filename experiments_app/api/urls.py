"""Routes of the experiments API (staff only), under /api/v1/."""

from __future__ import annotations

from django.urls import path  # noqa: F401  (routes are added below)

urlpatterns: list = []
