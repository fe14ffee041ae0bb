"""The served log and the interaction log: how long their rows live (``inbo.retention``,
ADR 0026). Windows: ``RETENTION_SERVED_DAYS``, ``RETENTION_INTERACTIONS_DAYS``; running
experiments hold both further back (``experiments_app.retention``)."""

from __future__ import annotations

from django.conf import settings

from experience_app.models import ExperienceInteraction, ServedFeed
from experience_app.selectors import NEVER_AGAIN_TYPES
from inbo import retention

SERVED = retention.register(
    retention.Log(
        name="served",
        table=ServedFeed._meta.db_table,
        pk="request_id",
        time_column="served_at",  # indexed: batches and the oldest row by time
        window_days=lambda: settings.RETENTION_SERVED_DAYS,
    )
)

# A dismissal, a hide or a finished read is the reader's "never again": those rows are the
# memory ``never_again_item_ids`` reads, for as long as the account lives.
_NEVER_AGAIN = ", ".join(f"'{t.value}'" for t in NEVER_AGAIN_TYPES)
INTERACTIONS = retention.register(
    retention.Log(
        name="interactions",
        table=ExperienceInteraction._meta.db_table,
        pk="id",
        time_column="occurred_at",
        order="id",  # no index on the time alone; ids follow arrival
        window_days=lambda: settings.RETENTION_INTERACTIONS_DAYS,
        keep=f"interaction_type IN ({_NEVER_AGAIN})",
    )
)
