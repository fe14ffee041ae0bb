"""Accounts: no models of its own (Django's users, DRF's tokens), only signal receivers."""

from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "inbo.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # Every process (web, Celery, management commands) drops cached tokens on change.
        from inbo.accounts import signals  # noqa: F401
