from django.apps import AppConfig


class ReadingAppConfig(AppConfig):
    name = "reading_app"
    verbose_name = "Reading"
    default_auto_field = "django.db.models.BigAutoField"
