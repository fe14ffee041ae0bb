"""The search log: how long its rows live (``inbo.retention``, ADR 0026). Window:
``RETENTION_SEARCH_LOG_DAYS``; a search's clicks go with it."""

from __future__ import annotations

from django.conf import settings

from inbo import retention
from search_app.models import SearchClick, SearchLog

SEARCH = retention.register(
    retention.Log(
        name="search",
        table=SearchLog._meta.db_table,
        pk="id",
        time_column="created_at",  # indexed (search_log_created_idx)
        window_days=lambda: settings.RETENTION_SEARCH_LOG_DAYS,
        children=((SearchClick._meta.db_table, "search_id"),),
    )
)
