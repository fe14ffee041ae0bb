from django.apps import AppConfig


class ExperienceAppConfig(AppConfig):
    name = "experience_app"
    verbose_name = "Experience"
    default_auto_field = "django.db.models.BigAutoField"
