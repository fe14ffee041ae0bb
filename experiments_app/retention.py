"""The experiments' logs, and what running experiments keep of the others (``inbo.retention``,
ADR 0026).

A running experiment's report reads the served log, the interactions and the event log from
``PRE_PERIOD`` before its start (``services.metrics``), and off-policy evaluation reads its
decisions: :func:`_hold` keeps those rows past their window while it runs. Exposures go only
with an experiment stopped before the window (``RETENTION_EXPOSURES_DAYS``); decisions after
``RETENTION_DECISIONS_DAYS``; a bandit's snapshots after ``RETENTION_BANDIT_SNAPSHOTS_DAYS``,
its latest one always kept (the state Redis is restored from).
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from experiments_app.models import BanditSnapshot, Decision, Experiment, Exposure
from experiments_app.services.metrics import PRE_PERIOD
from inbo import retention

_EXPERIMENTS = Experiment._meta.db_table
_SNAPSHOTS = BanditSnapshot._meta.db_table
# The logs a running experiment's analysis reads.
HELD = frozenset({"served", "interactions", "decisions", "event_log"})


def _hold(log: str) -> datetime | None:
    if log not in HELD:
        return None
    started = (
        Experiment.objects.filter(status=Experiment.Status.RUNNING, started_at__isnull=False)
        .order_by("started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    return started - PRE_PERIOD if started is not None else None


retention.hold(_hold)

EXPOSURES = retention.register(
    retention.Log(
        name="exposures",
        table=Exposure._meta.db_table,
        pk="id",
        time_column="exposed_at",
        order="id",
        window_days=lambda: settings.RETENTION_EXPOSURES_DAYS,
        # Draft and running experiments keep every exposure; a stopped one until its stop
        # is older than the window (its report stays readable that long).
        keep=f"experiment_id NOT IN (SELECT id FROM {_EXPERIMENTS} "
        f"WHERE status = '{Experiment.Status.STOPPED.value}' AND stopped_at < %(cutoff)s)",
    )
)
DECISIONS = retention.register(
    retention.Log(
        name="decisions",
        table=Decision._meta.db_table,
        pk="id",
        time_column="decided_at",
        order="id",
        window_days=lambda: settings.RETENTION_DECISIONS_DAYS,
    )
)
BANDIT_SNAPSHOTS = retention.register(
    retention.Log(
        name="bandit_snapshots",
        table=_SNAPSHOTS,
        pk="id",
        time_column="taken_at",
        order="id",
        window_days=lambda: settings.RETENTION_BANDIT_SNAPSHOTS_DAYS,
        keep=f"id IN (SELECT max(id) FROM {_SNAPSHOTS} GROUP BY bandit_id)",
    )
)
