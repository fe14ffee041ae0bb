"""Reads of experience_app."""

from __future__ import annotations

from experience_app.models import ExperienceInteraction, InteractionType, UserInterest

NEGATIVE_TYPES = (InteractionType.DISMISS, InteractionType.HIDE)


def interest_category_ids(*, user_id: int) -> set[int]:
    return set(UserInterest.objects.filter(user_id=user_id).values_list("category_id", flat=True))


def negative_item_ids(*, user_id: int) -> set[int]:
    """Items the user dismissed or hid: they never come back."""
    return set(
        ExperienceInteraction.objects.filter(
            user_id=user_id, interaction_type__in=NEGATIVE_TYPES
        ).values_list("item_id", flat=True)
    )
