from django.apps import AppConfig


def _reader_changed(user_id: int, what: str) -> None:
    """A reader's subscriptions, saves or progress changed: their next home is built anew
    (``continue_reading`` and ``fresh`` must not wait for the cached feed to expire)."""
    from experience_app.services.feed import cache

    cache.invalidate(user_id)


class ExperienceAppConfig(AppConfig):
    name = "experience_app"
    verbose_name = "Experience"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from experience_app.services.reader_control import forgetting_source
        from features_app import public as features
        from reading_app import public as reading

        reading.subscribe_reader_changes(_reader_changed)
        # Removed interests and resets stay forgotten when the feature store recounts.
        features.subscribe_forgetting(forgetting_source)
