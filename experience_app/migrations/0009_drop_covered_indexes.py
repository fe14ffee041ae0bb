"""Indexes that no query needs on the interaction and served-feed logs (one row per
interaction, one per home served): the user's own index, which interaction_user_time_idx and
served_feed_user_idx lead with (user lookups and deletes use those), and the request id's,
which no query reads by."""

import django.db.models.deletion
from django.conf import settings
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
        ("experience_app", "0008_reader_control"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                drop(
                    "experience_app_experienceinteraction_request_id_09d39b1c",
                    "experience_app_experienceinteraction",
                    '"request_id"',
                ),
                drop(
                    "experience_app_experienceinteraction_user_id_11413c38",
                    "experience_app_experienceinteraction",
                    '"user_id"',
                ),
                drop(
                    "experience_app_servedfeed_user_id_8bdf1f34",
                    "experience_app_servedfeed",
                    '"user_id"',
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="experienceinteraction",
                    name="request_id",
                    field=models.UUIDField(blank=True, null=True),
                ),
                migrations.AlterField(
                    model_name="experienceinteraction",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="interactions",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="servedfeed",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="served_feeds",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]
