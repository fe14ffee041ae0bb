"""Indexes another index makes redundant: reading progress's user index (reading_progress_unique
leads with user_id; progress is written on every scroll), the item's provider index
(item_provider_pub_idx leads with provider_id) and its publication-time index (every read
filters published items in item_status_pub_idx's order; the planner picked the lone
published_at index with a sort over it for the home's candidates)."""

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
        ("reading_app", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                drop(
                    "reading_app_item_provider_id_0bba4399",
                    "reading_app_item",
                    '"provider_id"',
                ),
                drop(
                    "reading_app_item_published_at_744ff3b5",
                    "reading_app_item",
                    '"published_at"',
                ),
                drop(
                    "reading_app_readingprogress_user_id_ae3a912b",
                    "reading_app_readingprogress",
                    '"user_id"',
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="item",
                    name="provider",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="items",
                        to="reading_app.provider",
                    ),
                ),
                migrations.AlterField(
                    model_name="item",
                    name="published_at",
                    field=models.DateTimeField(),
                ),
                migrations.AlterField(
                    model_name="readingprogress",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="reading_progress",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]
