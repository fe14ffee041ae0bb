from django.apps import AppConfig


class FeaturesAppConfig(AppConfig):
    name = "features_app"
    verbose_name = "Features"
    default_auto_field = "django.db.models.BigAutoField"
