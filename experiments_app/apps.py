from django.apps import AppConfig


class ExperimentsAppConfig(AppConfig):
    name = "experiments_app"
    verbose_name = "Experiments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The feed asks this provider for each user's treatment (experience_app.treatments);
        # experiments_app sits above experience_app, so it registers itself.
        from experience_app import public as experience
        from experiments_app import serving

        experience.set_treatment_provider(serving.provider)
        serving.connect_signals()
