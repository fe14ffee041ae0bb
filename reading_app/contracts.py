"""Values that cross the reading_app boundary (frozen dataclasses only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CategoryIn:
    """A category to create if missing; ``parent_slug`` makes it a subcategory."""

    slug: str
    name: str
    parent_slug: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderIn:
    """A provider to create if missing, keyed by ``external_id``."""

    external_id: str
    slug: str
    name: str
    description: str = ""
    category_slugs: tuple[str, ...] = ()
    language: str = "en"
    country: str = ""
    website: str = ""
    is_sponsored: bool = False


@dataclass(frozen=True, slots=True)
class ItemIn:
    """An item to create if missing, keyed by ``external_id``."""

    external_id: str
    provider_external_id: str
    title: str
    published_at: datetime
    summary: str = ""
    body: str = ""
    url: str = ""
    category_slugs: tuple[str, ...] = ()
    language: str = "en"
    available: bool = True


@dataclass(frozen=True, slots=True)
class UpsertResult:
    """Ids of every requested row by its key, and how many rows were new."""

    ids: dict[str, int]
    created: int
