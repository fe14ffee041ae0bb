"""factory_boy factories for every model the tests build."""

from __future__ import annotations

import uuid
from datetime import timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from features_app.models import UserEvent
from reading_app.models import Category, Item, Provider, ReadingProgress, SavedItem, Subscription


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"reader{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Topic {n}")
    slug = factory.Sequence(lambda n: f"topic-{n}")
    parent = None


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"The Weekly {n}")
    slug = factory.Sequence(lambda n: f"the-weekly-{n}")
    description = "A newsletter about things."
    language = "en"
    country = "US"
    website = "https://example.com/"

    @factory.post_generation
    def categories(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.categories.set(extracted)


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item
        skip_postgeneration_save = True

    provider = factory.SubFactory(ProviderFactory)
    title = factory.Sequence(lambda n: f"Issue #{n}")
    summary = "What happened this week."
    body = "Words " * 300
    published_at = factory.Sequence(lambda n: timezone.now() - timedelta(hours=n))
    word_count = 300
    reading_time_minutes = 2

    @factory.post_generation
    def categories(obj, create, extracted, **kwargs):
        if create and extracted:
            obj.categories.set(extracted)


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    user = factory.SubFactory(UserFactory)
    provider = factory.SubFactory(ProviderFactory)


class SavedItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SavedItem

    user = factory.SubFactory(UserFactory)
    item = factory.SubFactory(ItemFactory)


class ReadingProgressFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReadingProgress

    user = factory.SubFactory(UserFactory)
    item = factory.SubFactory(ItemFactory)
    progress = 0.4
    position = 1200


class UserEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UserEvent

    user = factory.SubFactory(UserFactory)
    item = factory.SubFactory(ItemFactory)
    event_type = "click"
    occurred_at = factory.LazyFunction(timezone.now)
    event_id = factory.LazyFunction(uuid.uuid4)
