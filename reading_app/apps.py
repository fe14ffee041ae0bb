from django.apps import AppConfig


class ReadingAppConfig(AppConfig):
    name = "reading_app"
    verbose_name = "Reading"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Catalog changes become notifications other apps can subscribe to (search).
        # ...and empty the shared caches of catalog data (reading_app/caches.py).
        from reading_app import caches, signals  # noqa: F401
        from reading_app.services import changes

        changes.subscribe(caches.catalog_changed)
