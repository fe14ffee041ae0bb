"""The ml_app facade. Empty on purpose: arrows run one way (ADR 0019), so no serving app
imports the offline app; its entry points are management commands."""

from __future__ import annotations

__all__: list[str] = []
