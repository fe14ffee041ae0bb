from django.apps import AppConfig


class RulesAppConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "rules_app"
    verbose_name = "Business rules"
