"""Search documents built from the catalog (``reading_app.public``), one batch at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

from reading_app import public as reading
from reading_app.contracts import CatalogKind, ItemSearchData, ProviderSearchData
from search_app.contracts import Document

# The body is searched and highlighted through its first characters only: long issues
# would otherwise dominate the index's size for little recall.
BODY_EXCERPT_CHARS = 4000
# Documents read from the catalog per round trip (two queries each).
READ_BATCH = 1000


def item_document(data: ItemSearchData) -> Document:
    return Document(
        CatalogKind.ITEMS,
        data.id,
        {
            "title": data.title,
            "provider": data.provider_name,
            "provider_slug": data.provider_slug,
            "provider_id": data.provider_id,
            "summary": data.summary,
            "body": data.body_excerpt,
            "categories": list(data.category_slugs),
            "language": data.language,
            "published_at": data.published_at,
        },
    )


def provider_document(data: ProviderSearchData) -> Document:
    return Document(
        CatalogKind.PROVIDERS,
        data.id,
        {
            "title": data.name,
            "provider": data.name,
            "provider_slug": data.slug,
            "provider_id": data.id,
            "summary": data.description,
            "body": "",
            "categories": list(data.category_slugs),
            "language": data.language,
            "published_at": None,
        },
    )


def documents_for(doc_type: CatalogKind, ids: Sequence[int]) -> dict[int, Document]:
    """The documents of ``ids`` as the catalog has them now, by id, in two queries. An id
    that is absent (deleted, unpublished) has no document: it must leave the index."""
    if doc_type == CatalogKind.ITEMS:
        items = reading.item_search_data(ids, body_chars=BODY_EXCERPT_CHARS)
        return {pk: item_document(data) for pk, data in items.items()}
    providers = reading.provider_search_data(ids)
    return {pk: provider_document(data) for pk, data in providers.items()}


class CatalogDocuments(Sequence[Document]):
    """Every document of a type, lazily: ``len()`` and slicing cost nothing, iterating
    reads the catalog in batches of ``READ_BATCH``. The ids are fixed when it is made (a
    document deleted since is skipped while iterating)."""

    def __init__(self, doc_type: CatalogKind, ids: Sequence[int]):
        self.doc_type = doc_type
        self.ids = list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> Document: ...

    @overload
    def __getitem__(self, index: slice) -> CatalogDocuments: ...

    def __getitem__(self, index: int | slice) -> Document | CatalogDocuments:
        if isinstance(index, slice):
            return CatalogDocuments(self.doc_type, self.ids[index])
        pk = self.ids[index]
        found = documents_for(self.doc_type, [pk])
        if pk not in found:
            raise IndexError(f"{self.doc_type.value} {pk} is no longer in the catalog")
        return found[pk]

    def __iter__(self) -> Iterator[Document]:
        for start in range(0, len(self.ids), READ_BATCH):
            batch = self.ids[start : start + READ_BATCH]
            found = documents_for(self.doc_type, batch)
            yield from (found[pk] for pk in batch if pk in found)


def catalog_documents(doc_type: CatalogKind) -> CatalogDocuments:
    """Every document a complete index of ``doc_type`` holds (for rebuilds)."""
    return CatalogDocuments(doc_type, reading.searchable_ids(doc_type.value))
