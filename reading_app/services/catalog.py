"""Bulk, idempotent creation of categories, providers and items (imports and demo data)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import transaction

from inbo.errors import InvalidInput
from reading_app.contracts import (
    CatalogKind,
    CatalogOp,
    CategoryIn,
    CreateMissingResult,
    ItemIn,
    ProviderIn,
)
from reading_app.models import Category, Item, Provider
from reading_app.services.changes import notify

BATCH_SIZE = 1000
_WORD = re.compile(r"\w+", re.UNICODE)


def word_count(*texts: str) -> int:
    return sum(len(_WORD.findall(t)) for t in texts if t)


def reading_time_minutes(words: int) -> int:
    """Estimated minutes to read ``words`` words at the configured pace (at least 1)."""
    return max(1, math.ceil(words / settings.READING_WORDS_PER_MINUTE))


def _chunks(seq: Sequence, size: int = BATCH_SIZE) -> Iterable[Sequence]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _ids_by_external_id(model: type[Provider] | type[Item], keys: Sequence[str]) -> dict[str, int]:
    """Map external ids to primary keys, querying in chunks (long IN lists are slow)."""
    found: dict[str, int] = {}
    for chunk in _chunks(keys):
        rows = model.objects.filter(external_id__in=chunk).values_list("external_id", "id")
        found.update((str(key), pk) for key, pk in rows)
    return found


@transaction.atomic
def categories_create_missing(categories: Sequence[CategoryIn]) -> CreateMissingResult:
    """Create missing categories (parents first); existing slugs are left as they are."""
    parents = [c for c in categories if c.parent_slug is None]
    children = [c for c in categories if c.parent_slug is not None]
    before = Category.objects.count()
    Category.objects.bulk_create(
        [Category(slug=c.slug, name=c.name) for c in parents], ignore_conflicts=True
    )
    parent_ids = dict(
        Category.objects.filter(
            slug__in={c.parent_slug for c in children} | {c.slug for c in parents}
        ).values_list("slug", "id")
    )
    missing = {c.parent_slug for c in children} - parent_ids.keys()
    if missing:
        raise InvalidInput("Unknown parent categories.", details={"parents": sorted(missing)})
    # The tree has two levels: a parent must itself be top-level.
    nested = sorted(
        Category.objects.filter(
            slug__in={c.parent_slug for c in children}, parent__isnull=False
        ).values_list("slug", flat=True)
    )
    if nested:
        raise InvalidInput("Subcategories cannot have subcategories.", details={"parents": nested})
    Category.objects.bulk_create(
        [
            Category(slug=c.slug, name=c.name, parent_id=parent_ids[str(c.parent_slug)])
            for c in children
        ],
        ignore_conflicts=True,
    )
    ids = dict(
        Category.objects.filter(slug__in=[c.slug for c in categories]).values_list("slug", "id")
    )
    return CreateMissingResult(ids=ids, created=Category.objects.count() - before)


def _category_ids(slugs: Iterable[str]) -> dict[str, int]:
    wanted = set(slugs)
    found = dict(Category.objects.filter(slug__in=wanted).values_list("slug", "id"))
    if missing := wanted - found.keys():
        raise InvalidInput("Unknown categories.", details={"categories": sorted(missing)})
    return found


@transaction.atomic
def providers_create_missing(providers: Sequence[ProviderIn]) -> CreateMissingResult:
    """Create providers whose ``external_id`` is new; link their categories."""
    keys = [p.external_id for p in providers]
    existing = _ids_by_external_id(Provider, keys)
    new = [p for p in providers if p.external_id not in existing]
    Provider.objects.bulk_create(
        [
            Provider(
                external_id=p.external_id,
                slug=p.slug,
                name=p.name,
                description=p.description,
                language=p.language,
                country=p.country,
                website=p.website,
                is_sponsored=p.is_sponsored,
            )
            for p in new
        ],
        batch_size=BATCH_SIZE,
        ignore_conflicts=True,
    )
    ids = _ids_by_external_id(Provider, keys)
    cat_ids = _category_ids(s for p in new for s in p.category_slugs)
    Through = Provider.categories.through
    Through.objects.bulk_create(
        [
            Through(provider_id=ids[p.external_id], category_id=cat_ids[s])
            for p in new
            for s in dict.fromkeys(p.category_slugs)
        ],
        batch_size=BATCH_SIZE,
        ignore_conflicts=True,
    )
    # bulk_create sends no signals: announce the new rows (same transaction) ourselves.
    notify(CatalogKind.PROVIDERS, (ids.get(p.external_id) for p in new), CatalogOp.UPSERT)
    return CreateMissingResult(ids=ids, created=len(ids) - len(existing))


@transaction.atomic
def items_create_missing(items: Sequence[ItemIn]) -> CreateMissingResult:
    """Create items whose ``external_id`` is new, with word count and reading time."""
    keys = [i.external_id for i in items]
    existing = _ids_by_external_id(Item, keys)
    new = [i for i in items if i.external_id not in existing]
    provider_ids = _ids_by_external_id(Provider, list({i.provider_external_id for i in new}))
    if missing := {i.provider_external_id for i in new} - provider_ids.keys():
        raise InvalidInput("Unknown providers.", details={"providers": sorted(missing)})
    rows = []
    for i in new:
        words = word_count(i.body or i.summary)
        rows.append(
            Item(
                external_id=i.external_id,
                provider_id=provider_ids[i.provider_external_id],
                title=i.title[:500],
                summary=i.summary,
                body=i.body,
                url=i.url,
                published_at=i.published_at,
                word_count=words,
                reading_time_minutes=reading_time_minutes(words),
                language=i.language,
                status=Item.Status.PUBLISHED if i.available else Item.Status.UNAVAILABLE,
            )
        )
    Item.objects.bulk_create(rows, batch_size=BATCH_SIZE, ignore_conflicts=True)
    ids = _ids_by_external_id(Item, keys)
    cat_ids = _category_ids(s for i in new for s in i.category_slugs)
    Through = Item.categories.through
    Through.objects.bulk_create(
        [
            Through(item_id=ids[i.external_id], category_id=cat_ids[s])
            for i in new
            for s in dict.fromkeys(i.category_slugs)
        ],
        batch_size=BATCH_SIZE,
        ignore_conflicts=True,
    )
    notify(CatalogKind.ITEMS, (ids.get(i.external_id) for i in new), CatalogOp.UPSERT)
    return CreateMissingResult(ids=ids, created=len(ids) - len(existing))
