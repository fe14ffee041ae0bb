"""Every change that can revoke an API token drops its cached entry (token_cache.py).

A user deleted takes its tokens with it (cascade), each one through ``_token_deleted``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from rest_framework.authtoken.models import Token

from inbo.accounts import token_cache

# Saving only these fields changes nothing a token's cached entry holds (login bookkeeping).
_IRRELEVANT_USER_FIELDS = frozenset({"last_login"})


@receiver(post_delete, sender=Token, dispatch_uid="inbo.accounts.token_deleted")
def _token_deleted(sender: Any, instance: Token, **kwargs: Any) -> None:
    token_cache.forget([instance.key])


@receiver(post_save, sender=Token, dispatch_uid="inbo.accounts.token_saved")
def _token_saved(sender: Any, instance: Token, created: bool, **kwargs: Any) -> None:
    if not created:  # a new key cannot be cached yet
        token_cache.forget([instance.key])


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="inbo.accounts.user_saved")
def _user_saved(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    update_fields = kwargs.get("update_fields")
    if created or (update_fields and set(update_fields) <= _IRRELEVANT_USER_FIELDS):
        return
    token_cache.forget_user(instance.pk)
