"""Reads of reading_app. Every list is shaped for its serializer: no N+1 queries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, connections
from django.db.models import Prefetch, QuerySet
from django.db.models.functions import Left

from inbo.replicas import lag_tolerant, read_alias
from reading_app import caches
from reading_app.contracts import ItemFacets, ItemSearchData, ProviderSearchData
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


# Facets change rarely (provider, categories, publication, status) and every feed build
# needs hundreds of them: shared through the two-level cache (reading_app/caches.py), which
# every process empties within a second of a change to an item, provider or category.


def facets_cache_clear() -> None:
    """Forget every cached facet, in every process (tests; after bulk edits in a shell,
    which send no change signals)."""
    caches.ITEM_FACETS.invalidate()


def item_facets(item_ids: Iterable[int], *, cached: bool = False) -> dict[int, ItemFacets]:
    """Provider, categories and publication time of items, in two queries.

    ``cached=True`` serves them from the two-level cache (for the feed: a change reaches
    every process within ``CACHE_VERSION_CHECK_SECONDS``; a bulk ``UPDATE`` that sends no
    signal, within the cache's TTL).
    """
    if cached:
        return caches.ITEM_FACETS.get_many(item_ids, _load_facets)
    return _load_facets(list(set(item_ids)))


# Plain SQL, the ids sent as one array literal: the ORM's ``id__in`` prepares and quotes
# each id in Python (ingestion loads the facets of every batch: 100 ids cost 3.2 ms of CPU
# through the ORM, 1.3 here).
# Two statements, as the ORM sent; on the replica the router would choose (``read_alias``).
# published_at comes as microseconds since the epoch (exact: numeric), which costs a tenth
# of parsing the timestamp's text.
_FACETS = (
    "SELECT id, provider_id, (extract(epoch FROM published_at) * 1000000)::bigint, status, "
    f"language FROM {Item._meta.db_table} "
    "WHERE id = ANY(%s::bigint[]) ORDER BY published_at DESC, id DESC"  # Item's own order
)
_FACET_CATEGORIES = (
    f"SELECT item_id, category_id FROM {Item.categories.through._meta.db_table} "
    "WHERE item_id = ANY(%s::bigint[])"
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _load_facets(ids: list[int]) -> dict[int, ItemFacets]:
    if not ids:
        return {}
    array = "{" + ",".join(str(int(i)) for i in ids if i is not None) + "}"  # as id__in
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(_FACETS, [array])
        rows = cursor.fetchall()
        cursor.execute(_FACET_CATEGORIES, [array])
        cats: dict[int, list[int]] = {}
        for item_id, category_id in cursor.fetchall():
            cats.setdefault(item_id, []).append(category_id)
    published = Item.Status.PUBLISHED
    return {
        item_id: ItemFacets(
            item_id=item_id,
            provider_id=provider_id,
            category_ids=tuple(sorted(cats.get(item_id, ()))),
            published_at=_EPOCH + timedelta(microseconds=published_us),
            available=status == published,
            language=language,
        )
        for item_id, provider_id, published_us, status, language in rows
    }


_SUBSCRIBED = (
    f"SELECT provider_id FROM {Subscription._meta.db_table} WHERE user_id = %s AND status = %s"
)


def subscribed_provider_ids(*, user_id: int) -> set[int]:
    """Plain SQL: a feed build calls it."""
    with connections[read_alias()].cursor() as cursor:  # where the ORM would read
        cursor.execute(_SUBSCRIBED, [user_id, Subscription.Status.ACTIVE.value])
        return {row[0] for row in cursor.fetchall()}


_COMPLETED = (
    f"SELECT item_id FROM {ReadingProgress._meta.db_table} "
    "WHERE user_id = %s AND completed_at IS NOT NULL"
)


# Those of some items the user read to the end (named parameters: ``user_id``, and
# ``item_ids`` as a PostgreSQL array literal, ``{1,2,3}``, which costs less to send than a
# list), on the unique (user_id, item_id) index: a handful of rows, not the reader's history.
# The array comes through a scalar subquery (an InitPlan): PostgreSQL would otherwise
# estimate each element's selectivity while planning, which cost more than the query.
COMPLETED_AMONG = (
    f"SELECT item_id FROM {ReadingProgress._meta.db_table} "
    "WHERE user_id = %(user_id)s AND item_id = ANY((SELECT %(item_ids)s::bigint[])::bigint[]) "
    "AND completed_at IS NOT NULL"
)


def completed_item_ids(*, user_id: int) -> set[int]:
    """Plain SQL: a feed build calls it."""
    with connection.cursor() as cursor:
        cursor.execute(_COMPLETED, [user_id])
        return {row[0] for row in cursor.fetchall()}


# ``continue_reading_list`` touched since a time, as the ORM wrote it (a feed build reads it).
_IN_PROGRESS = (
    f"SELECT p.item_id, p.progress FROM {ReadingProgress._meta.db_table} p "
    f"JOIN {Item._meta.db_table} i ON p.item_id = i.id "
    "WHERE p.completed_at IS NULL AND i.status = %s AND p.user_id = %s AND p.updated_at >= %s "
    "ORDER BY p.updated_at DESC, p.id DESC LIMIT %s"
)


def in_progress(*, user_id: int, since: datetime, limit: int) -> list[tuple[int, float]]:
    """(item id, progress) of started, unfinished reads touched since ``since``, latest first
    (plain SQL: a feed build calls it)."""
    with connections[read_alias()].cursor() as cursor:  # where the ORM would read
        cursor.execute(_IN_PROGRESS, [Item.Status.PUBLISHED.value, user_id, since, limit])
        return [(item_id, progress) for item_id, progress in cursor.fetchall()]


@lag_tolerant  # candidate pools of the feed and the rules: a replica may answer
def recent_item_ids(
    *,
    since: datetime,
    limit: int,
    category_ids: Iterable[int] | None = None,
    provider_ids: Iterable[int] | None = None,
) -> list[int]:
    """Published item ids newer than ``since``, newest first, optionally narrowed (plain SQL,
    the ids as one array literal: a feed build calls it three times)."""
    sql = _RECENT
    params: list[Any] = [since, Item.Status.PUBLISHED.value]
    for ids, narrowed in ((category_ids, _RECENT_IN_CATEGORIES), (provider_ids, _RECENT_BY)):
        if ids is None:
            continue
        listed = [int(i) for i in ids]
        if not listed:
            return []  # as the ORM: nothing to match, no query
        sql += narrowed
        params.append("{" + ",".join(map(str, listed)) + "}")
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(sql + _RECENT_ORDER, [*params, limit])
        return [row[0] for row in cursor.fetchall()]


_RECENT = f"SELECT id FROM {Item._meta.db_table} WHERE published_at >= %s AND status = %s"
_RECENT_IN_CATEGORIES = (
    f" AND id IN (SELECT item_id FROM {Item.categories.through._meta.db_table} "
    "WHERE category_id = ANY(%s::bigint[]))"
)
_RECENT_BY = " AND provider_id = ANY(%s::bigint[])"
_RECENT_ORDER = " ORDER BY published_at DESC, id DESC LIMIT %s"


# --- Search: the catalog's text, in bulk ---------------------------------------------


def _category_slugs(through: Any, owner_field: str, ids: list[int]) -> dict[int, tuple[str, ...]]:
    """Owner id -> sorted slugs of its categories and their parents (one query)."""
    slugs: dict[int, set[str]] = {}
    rows = through.objects.filter(**{f"{owner_field}__in": ids}).values_list(
        owner_field, "category__slug", "category__parent__slug"
    )
    for owner, slug, parent in rows:
        found = slugs.setdefault(owner, set())
        found.add(slug)
        if parent:
            found.add(parent)
    return {owner: tuple(sorted(found)) for owner, found in slugs.items()}


def item_search_data(item_ids: Iterable[int], *, body_chars: int) -> dict[int, ItemSearchData]:
    """Published items' searchable text (the body cut to ``body_chars``), in two queries."""
    ids = list(set(item_ids))
    if not ids:
        return {}
    rows = (
        Item.objects.filter(id__in=ids, status=Item.Status.PUBLISHED)
        .annotate(body_excerpt=Left("body", body_chars))
        .values_list(
            "id",
            "title",
            "summary",
            "body_excerpt",
            "provider_id",
            "provider__name",
            "provider__slug",
            "language",
            "published_at",
        )
    )
    cats = _category_slugs(Item.categories.through, "item_id", ids)
    return {
        row[0]: ItemSearchData(
            id=row[0],
            title=row[1],
            summary=row[2],
            body_excerpt=row[3] or "",
            provider_id=row[4],
            provider_name=row[5],
            provider_slug=row[6],
            category_slugs=cats.get(row[0], ()),
            language=row[7],
            published_at=row[8],
        )
        for row in rows
    }


def provider_search_data(provider_ids: Iterable[int]) -> dict[int, ProviderSearchData]:
    """Providers' searchable text, in two queries."""
    ids = list(set(provider_ids))
    if not ids:
        return {}
    rows = Provider.objects.filter(id__in=ids).values_list(
        "id", "name", "slug", "description", "language"
    )
    cats = _category_slugs(Provider.categories.through, "provider_id", ids)
    return {
        pk: ProviderSearchData(
            id=pk,
            name=name,
            slug=slug,
            description=description,
            category_slugs=cats.get(pk, ()),
            language=language,
        )
        for pk, name, slug, description, language in rows
    }


def reading_depths(
    *, user_ids: Iterable[int], item_ids: Iterable[int]
) -> dict[tuple[int, int], float]:
    """(user id, item id) -> fraction read, for the pairs among ``user_ids`` x ``item_ids``
    that have reading progress (a finished read is 1.0)."""
    rows = ReadingProgress.objects.filter(
        user_id__in=list(user_ids), item_id__in=list(item_ids)
    ).values_list("user_id", "item_id", "progress", "completed_at")
    return {(u, i): 1.0 if done else float(p) for u, i, p, done in rows}
