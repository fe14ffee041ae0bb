"""What crosses experiments_app's boundary besides the facade: signals other apps observe."""

from __future__ import annotations

from django.dispatch import Signal

# Sent when a guardrail stopped a running experiment: ``experiment`` (key), ``metric``
# (the guardrail breached). monitoring counts it (inbo_experiment_guardrail_stops_total).
guardrail_stopped = Signal()
