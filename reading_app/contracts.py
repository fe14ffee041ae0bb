"""Values that cross the reading_app boundary (frozen dataclasses and enums)."""

from __future__ import annotations

import enum
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
class CreateMissingResult:
    """Ids of every requested row by its key, and how many rows were new."""

    ids: dict[str, int]
    created: int


@dataclass(frozen=True, slots=True)
class SubscriptionIn:
    """A subscription to create if the user does not follow the provider yet.

    ``status`` is ``active``, ``paused`` or ``cancelled``; ``created_at`` backdates the row
    (imports and demo data), otherwise it is the moment of creation.
    """

    user_id: int
    provider_id: int
    status: str = "active"
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SavedItemIn:
    """A saved item to create if the user has not saved it yet."""

    user_id: int
    item_id: int
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReadingProgressIn:
    """Reading progress to create if the user has none for the item yet.

    ``progress`` is the fraction read (0..1); ``completed_at`` marks it read to the end.
    """

    user_id: int
    item_id: int
    progress: float
    position: int = 0
    started_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BulkCreateResult:
    """How many requested rows were new and how many were already there (left as they are)."""

    created: int
    existing: int


@dataclass(frozen=True, slots=True)
class ItemFacets:
    """What ranking and the feature store need to know about an item, without its text."""

    item_id: int
    provider_id: int
    category_ids: tuple[int, ...]
    published_at: datetime
    available: bool
    # ISO 639-1 (the item's; the feed's ``language_match``). Empty when not read.
    language: str = ""


class CatalogKind(enum.StrEnum):
    """A kind of catalog object: what changed in the catalog, and the document types search
    indexes (search_app uses this enum for them; it has none of its own)."""

    ITEMS = "items"
    PROVIDERS = "providers"


class CatalogOp(enum.StrEnum):
    UPSERT = "upsert"  # created, edited, or its categories changed
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class ItemSearchData:
    """The searchable text and filters of a published item."""

    id: int
    title: str
    summary: str
    body_excerpt: str
    provider_id: int
    provider_name: str
    provider_slug: str
    category_slugs: tuple[str, ...]  # its categories and their parents, sorted
    language: str
    published_at: datetime


@dataclass(frozen=True, slots=True)
class ProviderSearchData:
    """The searchable text and filters of a provider (newsletter)."""

    id: int
    name: str
    slug: str
    description: str
    category_slugs: tuple[str, ...]  # its categories and their parents, sorted
    language: str
