from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _ensure_partitions(sender, using: str = "default", **kwargs) -> None:
    """After ``migrate``: every month a client may report has its partition before the first
    request (the request path never creates one, and beat runs the job only nightly)."""
    from django.db import connections

    from features_app import partitions

    connection = connections[using]
    with connection.cursor() as cursor:
        # Migrated back to before the log was partitioned, or not migrated yet: nothing to do.
        cursor.execute(
            "SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)",
            [partitions.PARENT],
        )
        if cursor.fetchone() is None:
            return
    partitions.ensure_ahead()


class FeaturesAppConfig(AppConfig):
    name = "features_app"
    verbose_name = "Features"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_ensure_partitions, sender=self)
        # Changed items are embedded by a task queued when the change commits.
        from features_app.embedding_jobs import on_catalog_change
        from reading_app import public as reading

        reading.subscribe_catalog_changes(on_catalog_change)
