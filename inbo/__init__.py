"""INBO project package: settings, URLs, Celery app, Redis clients and key builders."""

from inbo.celery import app as celery_app

__all__ = ("celery_app",)
