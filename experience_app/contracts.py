"""What experience_app tells other apps without importing them (monitoring listens)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent when serving skips a model version it cannot use, with ``kind`` (e.g. "reranker")
# and ``reason`` ("missing", "checksum", "features", "unreadable").
model_fallback = Signal()

# Sent when a worker loads a model version to serve, with ``kind`` and ``version`` (int).
model_loaded = Signal()
