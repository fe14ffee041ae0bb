"""The never-again check a cached home runs on every hit (experience_app.selectors)."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from experience_app import selectors
from experience_app.models import ExperienceInteraction
from experience_app.services import feed
from reading_app.models import Item, ReadingProgress
from tests.connections import request_starts, terminate_backend
from tests.experience.utils import all_ids, make_item
from tests.factories import ItemFactory, ReadingProgressFactory, UserFactory

pytestmark = pytest.mark.django_db


def _interaction(user, item, kind: str) -> None:
    ExperienceInteraction.objects.create(
        user=user,
        item_id=item.id,
        interaction_type=kind,
        event_id=uuid.uuid4(),
        occurred_at=timezone.now(),
    )


def _progress(user, item, *, completed: bool) -> None:
    row = ReadingProgressFactory(user=user, item=item, progress=1.0 if completed else 0.4)
    ReadingProgress.objects.filter(pk=row.pk).update(
        completed_at=timezone.now() if completed else None
    )


def test_only_the_asked_items_the_reader_rejected_read_or_finished_are_never_again(user):
    dismissed, hidden, read, finished, clicked, started, elsewhere, other, outside = (
        ItemFactory() for _ in range(9)
    )
    _interaction(user, dismissed, "dismiss")
    _interaction(user, hidden, "hide")
    _interaction(user, read, "read")
    _interaction(user, clicked, "click")
    _interaction(user, clicked, "impression")
    _progress(user, finished, completed=True)
    _progress(user, started, completed=False)
    someone = UserFactory()
    _interaction(someone, other, "dismiss")
    _progress(someone, elsewhere, completed=True)
    # Rejected twice, and finished too: still one item.
    _interaction(user, dismissed, "hide")
    _progress(user, dismissed, completed=True)
    # Never again, but not in the cached feed: not asked about.
    _interaction(user, outside, "dismiss")

    asked = [dismissed, hidden, read, finished, clicked, started, elsewhere, other]
    gone = selectors.never_again_among(user_id=user.id, item_ids=[i.id for i in asked])

    assert gone == {dismissed.id, hidden.id, read.id, finished.id}


def test_no_items_asked_sends_no_query(user):
    with CaptureQueriesContext(connection) as queries:
        assert selectors.never_again_among(user_id=user.id, item_ids=[]) == set()
    assert len(queries) == 0


def test_one_statement_whatever_the_number_of_items(user):
    items = [ItemFactory() for _ in range(3)]
    _progress(user, items[0], completed=True)
    _interaction(user, items[1], "dismiss")
    with CaptureQueriesContext(connection) as queries:
        gone = selectors.never_again_among(user_id=user.id, item_ids=[i.id for i in items])
    assert gone == {items[0].id, items[1].id}
    assert len(queries) == 1


@pytest.mark.django_db(transaction=True)
def test_a_cached_home_filters_on_a_connection_broken_since_the_last_request(user):
    # The check is the request's only statement, and its connection's health check: a
    # connection the server ended meanwhile is replaced and the check still runs.
    for hours in range(1, 13):
        make_item(hours_ago=hours)
    shown = all_ids(feed.home(user.id))
    assert shown
    victim = shown[0]
    _interaction(user, Item.objects.get(pk=victim), "dismiss")  # no invalidation
    request_starts()
    before = terminate_backend()

    cached = feed.home(user.id)

    assert cached["cached"] is True
    assert victim not in all_ids(cached)
    assert connection.connection.info.backend_pid != before
