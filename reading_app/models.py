"""Content core: what newsletters exist, what they publish, who follows and reads what."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Category(models.Model):
    """A topic in a two-level tree: a top-level category or a subcategory of one."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=140, unique=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )

    class Meta:
        ordering = ("slug",)
        verbose_name_plural = "categories"
        constraints = [
            models.CheckConstraint(
                condition=~Q(parent=models.F("id")), name="category_not_own_parent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.parent.name} / {self.name}" if self.parent_id and self.parent else self.name

    def clean(self) -> None:
        # Two levels only; a CHECK constraint cannot look at another row, so forms and
        # ``full_clean`` enforce it (the DB still forbids a category being its own parent).
        if self.parent_id is None:
            return
        if self.pk is not None and self.parent_id == self.pk:
            raise ValidationError({"parent": "A category cannot be its own parent."})
        if Category.objects.filter(pk=self.parent_id, parent__isnull=False).exists():
            raise ValidationError({"parent": "A subcategory cannot have subcategories."})
        if self.pk is not None and Category.objects.filter(parent_id=self.pk).exists():
            raise ValidationError({"parent": "A category with subcategories must stay top-level."})


class Provider(models.Model):
    """A newsletter: the publisher whose issues (items) readers discover and follow."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=220, unique=True)
    description = models.TextField(blank=True)
    categories = models.ManyToManyField(Category, blank=True, related_name="providers")
    language = models.CharField(max_length=8, default="en", help_text="ISO 639-1 code")
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2 code")
    website = models.URLField(max_length=500, blank=True)
    is_sponsored = models.BooleanField(default=False)
    external_id = models.CharField(
        max_length=200,
        null=True,
        blank=True,
        unique=True,
        help_text="Stable id from an import source (e.g. 'mind:sub:newspolitics').",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name", "id")
        indexes = [models.Index(Lower("name"), name="provider_name_lower_idx")]

    def __str__(self) -> str:
        return self.name


class Item(models.Model):
    """One issue or post of a provider."""

    class Status(models.TextChoices):
        PUBLISHED = "published", "Published"
        # Known by id (events reference it) but without readable content: never listed.
        UNAVAILABLE = "unavailable", "Unavailable"

    # No index of its own: item_provider_pub_idx leads with it (deletes by provider too).
    provider = models.ForeignKey(
        Provider, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    title = models.CharField(max_length=500)
    summary = models.TextField(blank=True)
    body = models.TextField(blank=True)
    url = models.URLField(max_length=1000, blank=True)
    categories = models.ManyToManyField(Category, blank=True, related_name="items")
    # No index of its own: every read filters published items, item_status_pub_idx's order.
    published_at = models.DateTimeField()
    word_count = models.PositiveIntegerField(default=0)
    reading_time_minutes = models.PositiveSmallIntegerField(default=1)
    language = models.CharField(max_length=8, default="en")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PUBLISHED)
    external_id = models.CharField(max_length=200, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-published_at", "-id")
        indexes = [
            models.Index(fields=["provider", "-published_at"], name="item_provider_pub_idx"),
            models.Index(fields=["status", "-published_at", "-id"], name="item_status_pub_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status="unavailable") | ~Q(body="") | ~Q(url=""),
                name="item_published_has_body_or_url",
            ),
        ]

    def __str__(self) -> str:
        return self.title


class Subscription(models.Model):
    """A user following a provider. Cancelled rows are kept: they are history."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        CANCELLED = "cancelled", "Cancelled"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscriptions"
    )
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["user", "provider"], name="subscription_unique"),
        ]
        indexes = [models.Index(fields=["user", "status"], name="subscription_user_status_idx")]

    def __str__(self) -> str:
        return f"{self.user_id} → {self.provider_id} ({self.status})"


class SavedItem(models.Model):
    """An item a user kept to read later."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_items"
    )
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="saves")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [models.UniqueConstraint(fields=["user", "item"], name="saved_item_unique")]

    def __str__(self) -> str:
        return f"{self.user_id} saved {self.item_id}"


class ReadingProgress(models.Model):
    """How far a user got in an item; ``completed_at`` is set once it reaches the end."""

    # Written on every scroll: no index of its own, reading_progress_unique leads with it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="reading_progress",
        db_index=False,
    )
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="reading_progress")
    progress = models.FloatField(default=0.0, help_text="Fraction read, 0..1")
    position = models.PositiveIntegerField(default=0, help_text="Client scroll/character offset")
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-updated_at", "-id")
        verbose_name_plural = "reading progress"
        constraints = [
            models.UniqueConstraint(fields=["user", "item"], name="reading_progress_unique"),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="reading_progress_0_1"
            ),
        ]
        indexes = [
            models.Index(
                fields=["user", "-updated_at"],
                condition=Q(completed_at__isnull=True),
                name="reading_in_progress_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.item_id}: {self.progress:.0%}"
