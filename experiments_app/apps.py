from django.apps import AppConfig


class ExperimentsAppConfig(AppConfig):
    name = "experiments_app"
    verbose_name = "Experiments"
    default_auto_field = "django.db.models.BigAutoField"
