"""The exposure log: one row per (experiment, user), the first time the variant changed what
the user saw (the serving code calls this at that moment, never at login)."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection

from experiments_app.models import Experiment, Exposure, Variant


def log_exposure(
    experiment: Experiment, variant: Variant, user_id: int | None, at: datetime
) -> bool:
    """Record that ``user_id`` saw ``variant`` of ``experiment`` at ``at``; True when this
    was the first exposure. Idempotent and race-free: ``INSERT ... ON CONFLICT DO NOTHING``
    on the (experiment, user) constraint, so the first exposure's time and variant stay.
    Anonymous users (``None``) and user ids with no user are not logged (one query)."""
    if user_id is None:
        return False
    if variant.experiment_id != experiment.pk:
        raise ValueError(f"variant {variant.key!r} is not a variant of {experiment.key!r}")
    table = connection.ops.quote_name(Exposure._meta.db_table)
    users = connection.ops.quote_name(get_user_model()._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (experiment_id, variant_id, user_id, exposed_at) "
            f"SELECT %s, %s, u.id, %s FROM {users} u WHERE u.id = %s "
            "ON CONFLICT (experiment_id, user_id) DO NOTHING RETURNING id",
            [experiment.pk, variant.pk, at, user_id],
        )
        return cursor.fetchone() is not None
