"""A user's own reading state: subscriptions, saved items and reading progress.

Every function takes the acting user's id and only ever touches that user's rows; an
object of someone else's is reported as not found, never as forbidden (no probing).
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from inbo.errors import InvalidInput, NotFound
from reading_app.models import Item, Provider, ReadingProgress, SavedItem, Subscription
from reading_app.services.changes import notify_reader


def _published_item(item_id: int) -> Item:
    try:
        return Item.objects.get(id=item_id, status=Item.Status.PUBLISHED)
    except Item.DoesNotExist:
        raise NotFound("No such item.", details={"item_id": item_id}) from None


def subscription_create(*, user_id: int, provider_slug: str) -> tuple[Subscription, bool]:
    """Follow a provider; following again re-activates a paused or cancelled subscription.

    Returns the subscription and whether it changed (created or re-activated).
    """
    try:
        provider = Provider.objects.get(slug=provider_slug)
    except Provider.DoesNotExist:
        raise InvalidInput(
            "No such provider.", details={"provider": [f"Unknown provider '{provider_slug}'."]}
        ) from None
    with transaction.atomic():
        sub, created = Subscription.objects.select_for_update().get_or_create(
            user_id=user_id, provider=provider
        )
        if not created and sub.status != Subscription.Status.ACTIVE:
            sub.status = Subscription.Status.ACTIVE
            sub.save(update_fields=["status", "updated_at"])
            created = True  # re-activated: changed as a new one
        if created:
            notify_reader(user_id, "subscription")
    return sub, created


def subscription_cancel(*, user_id: int, subscription_id: int) -> Subscription:
    """Stop following; the row stays as history with status ``cancelled``."""
    with transaction.atomic():
        updated = Subscription.objects.filter(id=subscription_id, user_id=user_id).update(
            status=Subscription.Status.CANCELLED, updated_at=timezone.now()
        )
        if not updated:
            raise NotFound("No such subscription.", details={"subscription_id": subscription_id})
        notify_reader(user_id, "subscription")
    return Subscription.objects.select_related("provider").get(id=subscription_id)


def item_save(*, user_id: int, item_id: int) -> tuple[SavedItem, bool]:
    """Keep an item for later; saving twice is a no-op."""
    item = _published_item(item_id)
    try:
        with transaction.atomic():
            saved, created = SavedItem.objects.get_or_create(user_id=user_id, item=item)
            if created:
                notify_reader(user_id, "save")
            return saved, created
    except IntegrityError:  # a concurrent save of the same item won the race
        return SavedItem.objects.get(user_id=user_id, item=item), False


def item_unsave(*, user_id: int, item_id: int) -> None:
    with transaction.atomic():
        deleted, _ = SavedItem.objects.filter(user_id=user_id, item_id=item_id).delete()
        if not deleted:
            raise NotFound("This item is not saved.", details={"item_id": item_id})
        notify_reader(user_id, "save")


def progress_update(
    *, user_id: int, item_id: int, progress: float, position: int
) -> ReadingProgress:
    """Record how far the user got; reaching 1.0 marks the item completed (once)."""
    if not 0.0 <= progress <= 1.0:
        raise InvalidInput(details={"progress": ["Must be between 0 and 1."]})
    item = _published_item(item_id)
    with transaction.atomic():
        row, created = ReadingProgress.objects.select_for_update().get_or_create(
            user_id=user_id, item=item, defaults={"progress": progress, "position": position}
        )
        row.progress = progress
        row.position = position
        if progress >= 1.0 and row.completed_at is None:
            # A first update of 1.0 starts and completes the item at one instant: the insert
            # stamped started_at (auto_now_add), so reuse it. Later, never before the start
            # (a concurrent first update may have inserted the row after this one began).
            row.completed_at = row.started_at if created else max(timezone.now(), row.started_at)
        row.save()
        # "Continue reading" shows the item and how far the reader got.
        notify_reader(user_id, "progress")
    return row
