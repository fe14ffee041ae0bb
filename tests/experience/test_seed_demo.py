"""``seed_demo`` builds a small, plausible, deterministic world and never builds it twice."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from experience_app.datasets import demo as plan
from experience_app.services.demo import PRESETS, seed_demo
from features_app.models import UserEvent
from reading_app.models import Category, Item, Provider, ReadingProgress, SavedItem, Subscription

SMALL = PRESETS["small"]


def _table_counts() -> dict[str, int]:
    return {
        "categories": Category.objects.count(),
        "providers": Provider.objects.count(),
        "items": Item.objects.count(),
        "users": get_user_model().objects.count(),
        "subscriptions": Subscription.objects.count(),
        "progress": ReadingProgress.objects.count(),
        "saved": SavedItem.objects.count(),
        "events": UserEvent.objects.count(),
    }


@pytest.fixture
def world(db):
    return seed_demo(**SMALL)


def test_small_preset_builds_a_world(world):
    assert {k: v["created"] for k, v in world.items()} == {
        "categories": Category.objects.count(),
        "providers": 15,
        "items": 200,
        "users": 20,
        "subscriptions": Subscription.objects.count(),
        "reading_progress": ReadingProgress.objects.count(),
        "saved_items": SavedItem.objects.count(),
        "events": UserEvent.objects.filter(source="demo").count(),
    }
    assert Category.objects.filter(parent=None).count() == 10
    assert Category.objects.filter(slug="technology-ai", parent__slug="technology").exists()
    assert Provider.objects.filter(external_id="demo:provider:1").exists()
    assert get_user_model().objects.filter(username="demo_user_20").exists()
    assert Subscription.objects.count() >= 20
    assert UserEvent.objects.count() > 100


def test_items_are_published_within_the_window_with_text(world):
    now = timezone.now()
    items = Item.objects.filter(external_id__startswith="demo:item:")
    assert items.count() == 200
    assert not items.filter(published_at__gt=now)
    assert not items.filter(published_at__lt=now - timedelta(days=60, minutes=5))
    item = items.get(external_id="demo:item:1")
    assert item.title and item.summary and item.url.startswith("https://")
    assert item.body.startswith(item.summary)
    assert item.categories.filter(parent=None).count() == 1
    assert item.categories.exclude(parent=None).count() == 1
    words = sorted(items.values_list("word_count", flat=True))
    assert words[0] < 200 < words[-1]  # short notes and long reads


def test_reading_state_and_events_are_plausible(world):
    assert ReadingProgress.objects.filter(completed_at__isnull=False, progress=1.0).exists()
    partial = ReadingProgress.objects.filter(completed_at__isnull=True)
    assert partial.exists()
    assert not partial.filter(progress__gte=1.0)
    by_type = dict(UserEvent.objects.values_list("event_type").annotate(n=Count("id")))
    assert by_type["impression"] > by_type["click"] > by_type.get("read", 0) > 0
    assert by_type["save"] == SavedItem.objects.count()
    now = timezone.now()
    for event in UserEvent.objects.select_related("item"):
        assert event.item.published_at <= event.occurred_at <= now
        assert event.occurred_at >= now - timedelta(days=60, minutes=5)
    # Backdated rows: reading progress is spread over the window, not "now".
    assert ReadingProgress.objects.values("updated_at").distinct().count() > 1


def test_running_twice_creates_nothing_new(world):
    before = _table_counts()
    again = seed_demo(**SMALL)
    assert _table_counts() == before
    assert all(counts["created"] == 0 for counts in again.values())
    assert again["items"]["existing"] == 200


def test_command_prints_a_summary(db):
    out = io.StringIO()
    call_command("seed_demo", preset="small", items=50, stdout=out)
    text = out.getvalue()
    assert "Demo world (seed 42, 60 days)" in text
    assert "items" in text and "50" in text
    assert Item.objects.filter(external_id__startswith="demo:item:").count() == 50


def test_the_plan_is_deterministic_per_seed():
    anchor = timezone.now().replace(second=0, microsecond=0)
    providers = plan.providers(7, 10)
    first = plan.items(7, 30, providers, 60, anchor)
    assert first == plan.items(7, 30, plan.providers(7, 10), 60, anchor)
    assert first != plan.items(8, 30, plan.providers(8, 10), 60, anchor)
    # Item n is the same whatever the number of items: ids stay stable as worlds grow.
    assert plan.items(7, 10, providers, 60, anchor) == first[:10]
    assert len({p.spec.slug for p in plan.providers(7, 300)}) == 300
