"""The outbox's (doc_type, object_id) index: no query used it. A document's live row is
found through search_outbox_one_live_row (the enqueue's conflict target, newer rows), the
claim's check for a row in flight hashes the in-flight rows read through
search_outbox_due_idx, and the admin looks rows up by object id alone, which it does not
lead with. Every catalog change writes the outbox three times (insert, claim, delete).
Dropped concurrently."""

from django.contrib.postgres.operations import RemoveIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("search_app", "0002_outbox_live_due_index"),
    ]

    operations = [
        RemoveIndexConcurrently(model_name="searchoutbox", name="search_outbox_key_idx"),
    ]
