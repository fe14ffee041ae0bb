from django.apps import AppConfig


class MlAppConfig(AppConfig):
    name = "ml_app"
    verbose_name = "Offline learning and evaluation"
    default_auto_field = "django.db.models.BigAutoField"
