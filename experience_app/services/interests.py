"""Onboarding interests: the categories a new user picks before any event exists."""

from __future__ import annotations

from django.db import transaction

from experience_app.models import UserInterest
from experience_app.services import feed
from inbo.errors import InvalidInput
from reading_app import public as reading

MAX_INTERESTS = 30


def interests_set(*, user_id: int, category_slugs: list[str]) -> set[int]:
    """Replace the user's interests with ``category_slugs``; unknown slugs are a 400."""
    slugs = list(dict.fromkeys(category_slugs))
    if len(slugs) > MAX_INTERESTS:
        raise InvalidInput(details={"categories": [f"At most {MAX_INTERESTS} categories."]})
    ids = reading.category_ids_by_slug(slugs)
    if unknown := [s for s in slugs if s not in ids]:
        raise InvalidInput(details={"categories": [f"Unknown category '{s}'." for s in unknown]})
    with transaction.atomic():
        UserInterest.objects.filter(user_id=user_id).exclude(category_id__in=ids.values()).delete()
        UserInterest.objects.bulk_create(
            [UserInterest(user_id=user_id, category_id=c) for c in ids.values()],
            ignore_conflicts=True,
        )
        # Once committed: a rolled-back change (a caller's transaction) keeps the cached feed.
        transaction.on_commit(lambda: feed.invalidate(user_id))
    return set(ids.values())
