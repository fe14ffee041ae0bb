"""Reads of experience_app."""

from __future__ import annotations

from django.db.models import QuerySet

from experience_app.models import ExperienceInteraction, InteractionType, UserInterest

# Interactions after which an item is never shown again: the user rejected it, or read it
# to the end (a "read" interaction is the client's word for a finished read, like completed
# reading progress).
NEVER_AGAIN_TYPES = (InteractionType.DISMISS, InteractionType.HIDE, InteractionType.READ)


def interest_category_ids(*, user_id: int) -> set[int]:
    return set(UserInterest.objects.filter(user_id=user_id).values_list("category_id", flat=True))


def never_again_query(*, user_id: int) -> QuerySet:
    """Ids of items the user dismissed, hid or read, as a lazy query."""
    return ExperienceInteraction.objects.filter(
        user_id=user_id, interaction_type__in=NEVER_AGAIN_TYPES
    ).values_list("item_id", flat=True)


def never_again_item_ids(*, user_id: int) -> set[int]:
    """Items the user dismissed, hid or read to the end: they never come back."""
    return set(
        ExperienceInteraction.objects.filter(
            user_id=user_id, interaction_type__in=NEVER_AGAIN_TYPES
        ).values_list("item_id", flat=True)
    )
