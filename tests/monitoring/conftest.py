from __future__ import annotations

import pytest

from monitoring import checks


@pytest.fixture(autouse=True)
def _fresh_search_report(monkeypatch):
    """Every test asks search_app for its own report (probes share one for a few seconds)."""
    monkeypatch.setattr(checks, "_search_report", None)
