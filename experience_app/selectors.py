"""Reads of experience_app."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import datetime

from django.db import connection, connections

from experience_app.models import ExperienceInteraction, ReaderMute, ServedFeed, UserInterest
from features_app.contracts import EventType
from inbo import first_statement
from inbo.replicas import read_alias
from reading_app import public as reading

# Interactions after which an item is never shown again: the user rejected it, or read it
# to the end (a "read" interaction is the client's word for a finished read, like completed
# reading progress).
NEVER_AGAIN_TYPES = (EventType.DISMISS, EventType.HIDE, EventType.READ)


def interest_category_ids(*, user_id: int) -> set[int]:
    return set(UserInterest.objects.filter(user_id=user_id).values_list("category_id", flat=True))


_INTERESTS_AND_MUTES = (
    f"SELECT 'interest', category_id FROM {UserInterest._meta.db_table} WHERE user_id = %s "
    f"UNION ALL SELECT kind, target_id FROM {ReaderMute._meta.db_table} WHERE user_id = %s"
)


def interests_and_mutes(*, user_id: int) -> tuple[set[int], set[int], set[int]]:
    """(picked topic ids, muted provider ids, muted category ids) in one query: the feed
    reads both on every build. A muted topic's subcategories are the caller's to add."""
    found: dict[str, set[int]] = {"interest": set(), "provider": set(), "category": set()}
    with connection.cursor() as cursor:
        cursor.execute(_INTERESTS_AND_MUTES, [user_id, user_id])
        for kind, target in cursor.fetchall():
            found[kind].add(target)
    return found["interest"], found["provider"], found["category"]


_NEVER_AGAIN = (
    f"SELECT DISTINCT item_id FROM {ExperienceInteraction._meta.db_table} "
    "WHERE user_id = %s AND interaction_type = ANY(%s)"
)


def never_again_item_ids(*, user_id: int) -> set[int]:
    """Items the user dismissed, hid or read to the end: they never come back (a feed build
    leaves them out of its candidates)."""
    with connection.cursor() as cursor:
        cursor.execute(_NEVER_AGAIN, [user_id, [t.value for t in NEVER_AGAIN_TYPES]])
        return {row[0] for row in cursor.fetchall()}


# The types as literals (plain words, our own constants): the partial index's predicate is
# then provably implied whatever the binding, and there is no list to send.
_NEVER_AGAIN_TYPES_SQL = ", ".join(f"'{t.value}'" for t in NEVER_AGAIN_TYPES)
# One statement, one round trip: the interactions on their partial (user_id, item_id) index,
# reading progress on its unique (user_id, item_id) one, each narrowed to the items asked
# (the array through a scalar subquery, as reading_app's part says why).
_NEVER_AGAIN_AMONG = (
    f"SELECT item_id FROM {ExperienceInteraction._meta.db_table} "
    "WHERE user_id = %(user_id)s AND item_id = ANY((SELECT %(item_ids)s::bigint[])::bigint[]) "
    f"AND interaction_type IN ({_NEVER_AGAIN_TYPES_SQL}) "
    f"UNION ALL {reading.completed_among_sql()}"
)


def never_again_among(*, user_id: int, item_ids: Collection[int]) -> set[int]:
    """Those of ``item_ids`` the user dismissed, hid, read (the interaction) or read to the
    end (reading progress): what a cached feed must not show again.

    It runs on every cached home response (feedback given while Redis was away could not
    mark the cached feed stale), so it is one plain SQL statement over both tables,
    narrowed to the feed's items: a handful of rows whatever the reader's history, and no
    query at all for no items.
    """
    if not item_ids:
        return set()
    params: dict[str, int | str] = {
        "user_id": user_id,
        "item_ids": "{" + ",".join(str(int(i)) for i in item_ids) + "}",
    }
    # Often a request's only statement: it is the connection's health check as well.
    return {row[0] for row in first_statement.fetchall(_NEVER_AGAIN_AMONG, params)}


# Interactions that reject an item: its near-copies (same provider and category) do not
# follow it as "because you read".
REJECT_TYPES = (EventType.DISMISS, EventType.HIDE)


def rejected_item_ids(*, user_id: int, since: datetime, limit: int = 200) -> set[int]:
    """Items the user dismissed or hid since ``since``, the latest ``limit`` of them (what a
    feed build compares candidates with stays bounded whatever a client reports; plain
    SQL, the statement the ORM wrote)."""
    with connections[read_alias()].cursor() as cursor:  # where the ORM would read
        cursor.execute(_REJECTED, [since, user_id, limit])
        return {row[0] for row in cursor.fetchall()}


_REJECTED = (
    f"SELECT item_id FROM {ExperienceInteraction._meta.db_table} WHERE interaction_type IN "
    f"({', '.join(repr(str(t.value)) for t in REJECT_TYPES)}) "
    "AND occurred_at >= %s AND user_id = %s ORDER BY occurred_at DESC LIMIT %s"
)


def served_between(since: datetime, until: datetime, *, limit: int) -> Iterator[tuple]:
    """Served-log rows of ``[since, until)`` as ``(request_id, user_id, served_at, ranker,
    items)``, oldest first, at most ``limit``; degraded responses left out (ranked without
    the feature store, their signals are not what a healthy feed logs)."""
    return (
        ServedFeed.objects.filter(served_at__gte=since, served_at__lt=until, degraded=False)
        .order_by("served_at")
        .values_list("request_id", "user_id", "served_at", "ranker", "items")[:limit]
        .iterator(chunk_size=2000)
    )


def interactions_between(since: datetime, until: datetime) -> Iterator[tuple]:
    """Interactions that happened in ``[since, until)`` as ``(user_id, item_id, type,
    occurred_at, request_id)``, impressions left out."""
    return (
        ExperienceInteraction.objects.filter(occurred_at__gte=since, occurred_at__lt=until)
        .exclude(interaction_type=EventType.IMPRESSION)
        .values_list("user_id", "item_id", "interaction_type", "occurred_at", "request_id")
        .iterator(chunk_size=5000)
    )


# What counts as engaging with the home feed (a bandit's or the exploration slot's reward).
ENGAGEMENT_TYPES = (EventType.CLICK, EventType.READ)


def home_engagements(
    user_ids: Collection[int], since: datetime, until: datetime
) -> list[tuple[int, int, datetime]]:
    """Clicks and reads of ``user_ids`` on the home feed (an interaction attributed to a
    section) in ``[since, until)``, as ``(user_id, item_id, occurred_at)``."""
    if not user_ids:
        return []
    return list(
        ExperienceInteraction.objects.filter(
            user_id__in=list(user_ids),
            occurred_at__gte=since,
            occurred_at__lt=until,
            interaction_type__in=[t.value for t in ENGAGEMENT_TYPES],
        )
        .exclude(section="")
        .values_list("user_id", "item_id", "occurred_at")
    )
