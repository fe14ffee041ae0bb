"""The outbox claim's index: live rows (pending, failed) in the claim's order.

The claim filters ``next_attempt_at <= clock_timestamp()``, which is volatile: no index
condition can use it, and search_outbox_due_idx gave it every live row to filter and sort.
Walking live rows by (next_attempt_at, id) reads the due ones first and stops at the limit.
Built concurrently: the outbox is written with every catalog change.
"""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("search_app", "0001_initial"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="searchoutbox",
            index=models.Index(
                condition=models.Q(("status__in", ["pending", "failed"])),
                fields=["next_attempt_at", "id"],
                name="search_outbox_live_due_idx",
            ),
        ),
    ]
