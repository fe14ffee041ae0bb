"""Exposure's experiment and variant indexes: exposure_once_per_user and exposure_variant_time
lead with those columns (one exposure row per user and experiment is written on serving)."""

import django.db.models.deletion
from django.db import migrations, models


def drop(index: str, table: str, columns: str) -> migrations.RunSQL:
    """Drop without blocking the table's writes; put back the same way."""
    return migrations.RunSQL(
        f'DROP INDEX CONCURRENTLY IF EXISTS "{index}"',
        reverse_sql=f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{index}" ON "{table}" ({columns})',
    )


class Migration(migrations.Migration):
    # CONCURRENTLY runs outside a transaction. The foreign keys stay as they are (an
    # AlterField would drop and validate them again, a full scan under lock).
    atomic = False

    dependencies = [
        ("experiments_app", "0003_bandits_and_decisions"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                drop(
                    "experiments_app_exposure_experiment_id_f1c354c7",
                    "experiments_app_exposure",
                    '"experiment_id"',
                ),
                drop(
                    "experiments_app_exposure_variant_id_77cb8ee4",
                    "experiments_app_exposure",
                    '"variant_id"',
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="exposure",
                    name="experiment",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="exposures",
                        to="experiments_app.experiment",
                    ),
                ),
                migrations.AlterField(
                    model_name="exposure",
                    name="variant",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="exposures",
                        to="experiments_app.variant",
                    ),
                ),
            ],
        ),
    ]
