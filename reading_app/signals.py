"""Model signals of the catalog, turned into change notifications (``services.changes``).

Saves, deletes and category links of items and providers, and category edits that change
the slugs documents carry. ``bulk_create`` sends no signals: the bulk paths of
``services.catalog`` notify explicitly.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete, pre_save
from django.dispatch import receiver

from reading_app.contracts import CatalogKind, CatalogOp
from reading_app.models import Category, Item, Provider
from reading_app.services.changes import notify

ItemCategories = Item.categories.through
ProviderCategories = Provider.categories.through


@receiver(post_save, sender=Item, dispatch_uid="reading.item_saved")
def item_saved(sender: type[Item], instance: Item, **kwargs: Any) -> None:
    notify(CatalogKind.ITEMS, [instance.pk], CatalogOp.UPSERT)


def _deleted_with_a_provider(origin: Any) -> bool:
    if isinstance(origin, Provider):
        return True
    return isinstance(origin, QuerySet) and origin.model is Provider


@receiver(post_delete, sender=Item, dispatch_uid="reading.item_deleted")
def item_deleted(sender: type[Item], instance: Item, origin: Any = None, **kwargs: Any) -> None:
    # A provider's items were announced in one call by ``provider_deleting``.
    if not _deleted_with_a_provider(origin):
        notify(CatalogKind.ITEMS, [instance.pk], CatalogOp.DELETE)


@receiver(post_save, sender=Provider, dispatch_uid="reading.provider_saved")
def provider_saved(sender: type[Provider], instance: Provider, **kwargs: Any) -> None:
    notify(CatalogKind.PROVIDERS, [instance.pk], CatalogOp.UPSERT)


@receiver(pre_delete, sender=Provider, dispatch_uid="reading.provider_deleting")
def provider_deleting(sender: type[Provider], instance: Provider, **kwargs: Any) -> None:
    # Inside the deletion's transaction: the items go with their provider.
    item_ids = Item.objects.filter(provider_id=instance.pk).values_list("id", flat=True)
    notify(CatalogKind.ITEMS, item_ids, CatalogOp.DELETE)


@receiver(post_delete, sender=Provider, dispatch_uid="reading.provider_deleted")
def provider_deleted(sender: type[Provider], instance: Provider, **kwargs: Any) -> None:
    notify(CatalogKind.PROVIDERS, [instance.pk], CatalogOp.DELETE)


def _categories_changed(
    kind: CatalogKind,
    owner_field: str,
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    pk_set: set[int] | None,
) -> None:
    if action in ("post_add", "post_remove"):
        ids = (pk_set or ()) if reverse else [instance.pk]
    elif action == "pre_clear" and reverse:
        # Cleared from the category's side: the owners are only known before the clear.
        ids = sender.objects.filter(category_id=instance.pk).values_list(owner_field, flat=True)
    elif action == "post_clear" and not reverse:
        ids = [instance.pk]
    else:
        return
    notify(kind, ids, CatalogOp.UPSERT)


@receiver(m2m_changed, sender=ItemCategories, dispatch_uid="reading.item_categories")
def item_categories_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    _categories_changed(CatalogKind.ITEMS, "item_id", sender, instance, action, reverse, pk_set)


@receiver(m2m_changed, sender=ProviderCategories, dispatch_uid="reading.provider_categories")
def provider_categories_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    _categories_changed(
        CatalogKind.PROVIDERS, "provider_id", sender, instance, action, reverse, pk_set
    )


@receiver(pre_save, sender=Category, dispatch_uid="reading.category_saving")
def category_saving(sender: type[Category], instance: Category, **kwargs: Any) -> None:
    # Documents carry category slugs (and their parents'): remember what they were.
    if instance.pk is None or kwargs.get("raw"):
        instance._slugs_before = None  # type: ignore[attr-defined]
        return
    instance._slugs_before = (  # type: ignore[attr-defined]
        Category.objects.filter(pk=instance.pk).values_list("slug", "parent_id").first()
    )


@receiver(post_save, sender=Category, dispatch_uid="reading.category_saved")
def category_saved(sender: type[Category], instance: Category, **kwargs: Any) -> None:
    before = getattr(instance, "_slugs_before", None)
    if before is None or before == (instance.slug, instance.parent_id):
        return
    # This category and, for a top-level one, its subcategories: their documents changed.
    category_ids = [
        instance.pk,
        *Category.objects.filter(parent_id=instance.pk).values_list("id", flat=True),
    ]
    notify(
        CatalogKind.ITEMS,
        ItemCategories.objects.filter(category_id__in=category_ids).values_list(
            "item_id", flat=True
        ),
        CatalogOp.UPSERT,
    )
    notify(
        CatalogKind.PROVIDERS,
        ProviderCategories.objects.filter(category_id__in=category_ids).values_list(
            "provider_id", flat=True
        ),
        CatalogOp.UPSERT,
    )
