from django.apps import AppConfig


class ReadingAppConfig(AppConfig):
    name = "reading_app"
    verbose_name = "Reading"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Catalog changes become notifications other apps can subscribe to (search).
        from reading_app import signals  # noqa: F401
