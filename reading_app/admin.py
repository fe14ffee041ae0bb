from django.contrib import admin

from reading_app.models import Category, Item, Provider, ReadingProgress, SavedItem, Subscription


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "parent")
    list_filter = (("parent", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("name", "slug")
    list_select_related = ("parent",)
    prepopulated_fields = {"slug": ("name",)}
    raw_id_fields = ("parent",)


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "language", "country", "is_sponsored", "created_at")
    list_filter = ("is_sponsored", "language", "country")
    search_fields = ("name", "slug", "description", "=external_id")
    prepopulated_fields = {"slug": ("name",)}
    filter_horizontal = ("categories",)
    readonly_fields = ("created_at", "updated_at")
    date_hierarchy = "created_at"


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("title", "provider", "published_at", "status", "reading_time_minutes")
    list_filter = ("status", "language", "published_at")
    search_fields = ("title", "provider__name", "=external_id")
    list_select_related = ("provider",)
    raw_id_fields = ("provider",)
    filter_horizontal = ("categories",)
    readonly_fields = ("created_at", "updated_at")
    date_hierarchy = "published_at"
    show_full_result_count = False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ("user", "provider", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("user__username", "provider__name")
    list_select_related = ("user", "provider")
    raw_id_fields = ("user", "provider")


@admin.register(SavedItem)
class SavedItemAdmin(admin.ModelAdmin):
    list_display = ("user", "item", "created_at")
    search_fields = ("user__username", "item__title")
    list_select_related = ("user", "item")
    raw_id_fields = ("user", "item")
    date_hierarchy = "created_at"


@admin.register(ReadingProgress)
class ReadingProgressAdmin(admin.ModelAdmin):
    list_display = ("user", "item", "progress", "updated_at", "completed_at")
    list_filter = (("completed_at", admin.EmptyFieldListFilter),)
    search_fields = ("user__username", "item__title")
    list_select_related = ("user", "item")
    raw_id_fields = ("user", "item")
    date_hierarchy = "updated_at"
