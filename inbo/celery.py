"""The Celery application. Configuration lives in Django settings under ``CELERY_*``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inbo.settings")

app = Celery("inbo")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Worker heartbeat for readiness, and the worker's own /metrics (monitoring/worker.py); by
# name, so they load after Django is set up.
app.steps["worker"].update(
    {"monitoring.worker:WorkerHeartbeat", "monitoring.worker:WorkerMetricsServer"}
)
