from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from prometheus_client import REGISTRY

        from experience_app.contracts import model_fallback, model_loaded
        from experiments_app.contracts import guardrail_stopped
        from features_app.contracts import counters_recovered, retention_purged
        from monitoring import worker  # noqa: F401 - connects the Celery signal handlers
        from monitoring.metrics import (
            InboCollector,
            observe_counters_recovered,
            observe_guardrail_stop,
            observe_model_fallback,
            observe_model_loaded,
            observe_retention_purged,
        )

        counters_recovered.connect(
            observe_counters_recovered, dispatch_uid="monitoring.counters_recovered"
        )
        model_fallback.connect(observe_model_fallback, dispatch_uid="monitoring.model_fallback")
        model_loaded.connect(observe_model_loaded, dispatch_uid="monitoring.model_loaded")
        guardrail_stopped.connect(
            observe_guardrail_stop, dispatch_uid="monitoring.guardrail_stopped"
        )
        retention_purged.connect(
            observe_retention_purged, dispatch_uid="monitoring.retention_purged"
        )

        if not any(isinstance(c, InboCollector) for c in REGISTRY._collector_to_names):
            REGISTRY.register(InboCollector())
