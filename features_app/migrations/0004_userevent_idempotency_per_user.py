"""The event log's idempotency key becomes ``(event_id, user_id, occurred_at)`` (issue 9,
point 12): event ids come from clients, so they are unique per user only.

The log is partitioned (migration 0003): a unique key must contain the partition key
``occurred_at``, and PostgreSQL builds the new key's index on every partition. Adding it
and dropping the old one hold an ACCESS EXCLUSIVE lock on the log while the indexes are
built: plan a short maintenance window on a large log. The key leads with ``event_id`` so
that lookups by id alone still use it. The reverse fails if two users now share an
``(event_id, occurred_at)``: that data cannot go back under the global key.
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("features_app", "0003_userevent_partitioned"),
        ("reading_app", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="userevent",
            constraint=models.UniqueConstraint(
                fields=("event_id", "user", "occurred_at"), name="user_event_user_idempotency"
            ),
        ),
        migrations.RemoveConstraint(model_name="userevent", name="user_event_idempotency"),
    ]
