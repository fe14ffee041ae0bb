"""Client event ids are unique per user, not across users (issue 9, point 12).

A global key let one user's id collide with another's: the second user's interaction was
silently dropped as a duplicate, and the answer told them the id existed. The new key
``(event_id, user)`` leads with ``event_id``, so lookups by id alone (admin search) still
use an index. The reverse fails if two users now share an id: that data cannot go back.
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("experience_app", "0002_interaction_never_again_index"),
        ("reading_app", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="experienceinteraction",
            constraint=models.UniqueConstraint(
                fields=("event_id", "user"), name="interaction_user_event_id"
            ),
        ),
        migrations.AlterField(
            model_name="experienceinteraction",
            name="event_id",
            field=models.UUIDField(),
        ),
    ]
