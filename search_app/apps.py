"""Search over newsletters and their items through a pluggable ``SearchBackend``."""

from django.apps import AppConfig


class SearchAppConfig(AppConfig):
    name = "search_app"
    verbose_name = "Search"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Every catalog change lands in the outbox, inside the change's own transaction.
        from reading_app import public as reading
        from search_app.services.outbox import enqueue

        reading.subscribe_catalog_changes(enqueue)
