"""Input and output shapes of the reading_app API."""

from __future__ import annotations

from rest_framework import serializers

from inbo.api.fields import StrictIntegerField, StrictSlugField
from reading_app.models import Category, Item, Provider, ReadingProgress, SavedItem, Subscription


class CategorySerializer(serializers.ModelSerializer):
    # The API field is named "parent", which shadows Field.parent for the type checker only.
    # Null for a top-level category: allow_null makes the schema say so.
    parent = serializers.SlugRelatedField(  # type: ignore[assignment,var-annotated]
        slug_field="slug", read_only=True, allow_null=True
    )

    class Meta:
        model = Category
        fields = ("slug", "name", "parent")


class ProviderRefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Provider
        fields = ("id", "slug", "name", "is_sponsored")


class ProviderSerializer(serializers.ModelSerializer):
    categories = CategorySerializer(many=True, read_only=True)

    class Meta:
        model = Provider
        fields = (
            "id",
            "slug",
            "name",
            "description",
            "categories",
            "language",
            "country",
            "website",
            "is_sponsored",
            "created_at",
        )


class ItemSummarySerializer(serializers.ModelSerializer):
    """An item in a list: no body."""

    provider = ProviderRefSerializer(read_only=True)

    class Meta:
        model = Item
        fields: tuple[str, ...] = (
            "id",
            "title",
            "summary",
            "url",
            "provider",
            "published_at",
            "word_count",
            "reading_time_minutes",
            "language",
        )


class ItemListSerializer(ItemSummarySerializer):
    categories = CategorySerializer(many=True, read_only=True)

    class Meta(ItemSummarySerializer.Meta):
        fields: tuple[str, ...] = (*ItemSummarySerializer.Meta.fields, "categories")


class ItemDetailSerializer(ItemListSerializer):
    class Meta(ItemListSerializer.Meta):
        fields: tuple[str, ...] = (*ItemListSerializer.Meta.fields, "body")


class SubscriptionSerializer(serializers.ModelSerializer):
    provider = ProviderRefSerializer(read_only=True)

    class Meta:
        model = Subscription
        fields = ("id", "provider", "status", "created_at", "updated_at")


class SubscriptionCreateSerializer(serializers.Serializer):
    provider = StrictSlugField(max_length=220, help_text="The provider's slug.")


class SavedItemSerializer(serializers.ModelSerializer):
    item = ItemSummarySerializer(read_only=True)

    class Meta:
        model = SavedItem
        fields = ("item", "created_at")


class JSONNumberField(serializers.FloatField):
    """A float that must arrive as a JSON number: no strings ("0.5") and no booleans."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProgressInputSerializer(serializers.Serializer):
    progress = JSONNumberField(min_value=0.0, max_value=1.0, help_text="Fraction read, 0..1")
    position = StrictIntegerField(min_value=0, max_value=2_147_483_647, default=0)


class ReadingProgressSerializer(serializers.ModelSerializer):
    item = ItemSummarySerializer(read_only=True)

    class Meta:
        model = ReadingProgress
        fields = ("item", "progress", "position", "started_at", "updated_at", "completed_at")
