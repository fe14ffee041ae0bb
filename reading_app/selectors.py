"""Reads of reading_app. Every list is shaped for its serializer: no N+1 queries."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from reading_app.models import Category, Item, Provider, ReadingProgress, SavedItem, Subscription

_CATEGORIES = Prefetch("categories", queryset=Category.objects.select_related("parent"))


def provider_list() -> QuerySet[Provider]:
    return Provider.objects.prefetch_related(_CATEGORIES)


def item_list() -> QuerySet[Item]:
    """Published items with everything their serializer shows."""
    return (
        Item.objects.filter(status=Item.Status.PUBLISHED)
        .select_related("provider")
        .prefetch_related(_CATEGORIES)
    )


def subscription_list(*, user_id: int) -> QuerySet[Subscription]:
    return Subscription.objects.filter(user_id=user_id).select_related("provider")


def saved_item_list(*, user_id: int) -> QuerySet[SavedItem]:
    """Saved items that can still be read (an unavailable item is never listed)."""
    return SavedItem.objects.filter(
        user_id=user_id, item__status=Item.Status.PUBLISHED
    ).select_related("item__provider")


def continue_reading_list(*, user_id: int) -> QuerySet[ReadingProgress]:
    """Started, not completed, most recently touched first."""
    return (
        ReadingProgress.objects.filter(
            user_id=user_id, completed_at__isnull=True, item__status=Item.Status.PUBLISHED
        )
        .select_related("item__provider")
        .order_by("-updated_at", "-id")
    )


def progress_for(*, user_id: int, item_id: int) -> ReadingProgress | None:
    return (
        ReadingProgress.objects.filter(user_id=user_id, item_id=item_id)
        .select_related("item__provider")
        .first()
    )
