from django.urls import path

from monitoring import views

urlpatterns = [
    path("health/live/", views.live, name="health-live"),
    path("health/ready/", views.ready, name="health-ready"),
    # Replaces django_prometheus.urls: the same registry, plus multiprocess mode that keeps
    # INBO's scrape-time collector (ADR 0011).
    path("metrics", views.prometheus_metrics, name="prometheus-django-metrics"),
]
