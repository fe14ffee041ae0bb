"""``load_mind`` on a hand-written MIND-format fixture (tests/fixtures/mind)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count

from features_app.models import UserEvent
from reading_app.models import Category, Item, Provider

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mind"
NEWS, BEHAVIORS = FIXTURES / "news.tsv", FIXTURES / "behaviors.tsv"


def _load(news: Path = NEWS, behaviors: Path = BEHAVIORS, **options) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("load_mind", news=news, behaviors=behaviors, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def _table_counts() -> dict[str, int]:
    return {
        "categories": Category.objects.count(),
        "providers": Provider.objects.count(),
        "items": Item.objects.count(),
        "item_categories": Item.categories.through.objects.count(),
        "users": get_user_model().objects.count(),
        "events": UserEvent.objects.count(),
    }


def _event(user: str, news_id: str, event_type: str, **context) -> UserEvent:
    return UserEvent.objects.get(
        user__username=f"mind_{user}",
        item__external_id=f"mind:news:{news_id}",
        event_type=event_type,
        **{f"context__{k}": v for k, v in context.items()},
    )


def test_imports_the_expected_counts():
    out, _ = _load()
    assert "news rows:      10 read, 7 imported, 3 skipped" in out
    assert "behaviors:      9 lines read, 4 impressions, 5 skipped" in out
    assert "12 impression, 5 click, 4 history click" in out
    assert "events written: 21 created, 0 already present" in out
    assert "lines skipped:  8" in out
    assert Item.objects.filter(external_id__startswith="mind:news:").count() == 13
    assert set(get_user_model().objects.values_list("username", flat=True)) == {
        "mind_U10",
        "mind_U11",
        "mind_U12",
    }
    by_type = dict(
        UserEvent.objects.filter(source="mind")
        .values_list("event_type")
        .annotate(n=Count("id"))
        .values_list("event_type", "n")
    )
    assert by_type == {"impression": 12, "click": 9}


def test_categories_subcategories_and_providers_are_derived():
    _load()
    tops = set(Category.objects.filter(parent=None).values_list("slug", flat=True))
    assert tops == {"news", "sports", "video", "lifestyle", "finance"}
    children = dict(Category.objects.exclude(parent=None).values_list("slug", "parent__slug"))
    # "news" is a category and, under "video", a subcategory too: slugs stay unique.
    assert children == {
        "news-newspolitics": "news",
        "news-newsus": "news",
        "sports-football_nfl": "sports",
        "video-news": "video",
        "lifestyle-lifestyleroyals": "lifestyle",
        "finance-markets": "finance",
    }
    assert Category.objects.get(slug="news-newspolitics").name == "Politics"
    assert Category.objects.get(slug="sports-football_nfl").name == "Football NFL"
    provider = Provider.objects.get(external_id="mind:provider:news:newspolitics")
    assert provider.name == "News · Politics (MIND)"
    assert set(provider.categories.values_list("slug", flat=True)) == {
        "news",
        "news-newspolitics",
    }
    assert Provider.objects.filter(external_id__startswith="mind:provider:").count() == 7
    item = Item.objects.get(external_id="mind:news:N103")
    assert item.provider.external_id == "mind:provider:sports:football_nfl"
    assert set(item.categories.values_list("slug", flat=True)) == {"sports", "sports-football_nfl"}
    assert item.status == Item.Status.PUBLISHED
    assert item.summary.startswith("A 48-yard kick")


def test_ids_without_a_news_row_become_unavailable_items():
    _load()
    id_only = Item.objects.filter(provider__external_id="mind:provider:unknown")
    assert set(id_only.values_list("external_id", flat=True)) == {
        f"mind:news:N{n}" for n in range(900, 906)
    }
    assert set(id_only.values_list("status", flat=True)) == {Item.Status.UNAVAILABLE}
    assert not Item.objects.filter(status=Item.Status.UNAVAILABLE).exclude(
        provider__external_id="mind:provider:unknown"
    )


def test_events_and_publication_times_are_real_timestamps():
    _load()
    impression = _event("U10", "N102", "impression")
    assert impression.occurred_at == datetime(2019, 11, 10, 9, 15, 2, tzinfo=UTC)
    assert impression.context == {"impression_id": 1, "position": 0}
    assert _event("U11", "N104", "click", impression_id=2).occurred_at == datetime(
        2019, 11, 10, 13, 5, 44, tzinfo=UTC
    )
    # History clicks: one second before the user's first impression, once per user+news.
    history = _event("U10", "N900", "click", **{"from": "history"})
    assert history.occurred_at == datetime(2019, 11, 10, 9, 15, 1, tzinfo=UTC)
    assert history.context == {"from": "history", "impression_id": 1}
    assert _event("U11", "N900", "click", **{"from": "history"}).occurred_at == datetime(
        2019, 11, 10, 13, 5, 43, tzinfo=UTC
    )
    published = dict(
        Item.objects.filter(external_id__startswith="mind:news:").values_list(
            "external_id", "published_at"
        )
    )
    assert published["mind:news:N102"] == datetime(2019, 11, 10, 9, 15, 2, tzinfo=UTC)
    assert published["mind:news:N101"] == datetime(2019, 11, 10, 9, 15, 1, tzinfo=UTC)
    # Never referenced: the earliest behavior time of the file.
    assert published["mind:news:N108"] == datetime(2019, 11, 9, 23, 59, 59, tzinfo=UTC)
    for event in UserEvent.objects.select_related("item"):
        assert event.occurred_at >= event.item.published_at


def test_running_twice_changes_nothing():
    _load()
    before = _table_counts()
    out, _ = _load()
    assert _table_counts() == before
    assert "events written: 0 created, 21 already present" in out
    assert "created 0 (0 with text, 0 id-only)" in out
    assert "users:          3 (0 created)" in out


def test_malformed_lines_are_reported_with_file_and_line_and_skipped():
    _, err = _load()
    assert f"{NEWS}:7: skipped: expected 8 tab-separated columns, found 3" in err
    assert f"{NEWS}:8: skipped: news id is empty" in err
    assert f"{NEWS}:10: skipped: duplicate news id N101 (first on line 1)" in err
    assert f"{BEHAVIORS}:4: skipped: bad time '2019-11-11 08:00'" in err
    assert f"{BEHAVIORS}:5: skipped: bad impression entry 'N101-7'" in err
    assert f"{BEHAVIORS}:6: skipped: expected 5 tab-separated columns, found 4" in err
    assert f"{BEHAVIORS}:7: skipped: user id '' is empty" in err
    assert f"{BEHAVIORS}:9: skipped: duplicate impression id 8 (line 8)" in err
    assert err.count("skipped:") == 8
    assert not Item.objects.filter(external_id="mind:news:N107").exists()
    assert not get_user_model().objects.filter(username="mind_U13").exists()


def test_a_line_that_is_not_utf8_is_skipped(tmp_path):
    news = tmp_path / "news.tsv"
    news.write_bytes(NEWS.read_bytes() + b"N109\tnews\tnewsus\t\xff\xfe\t\t\t[]\t[]\n")
    out, err = _load(news=news)
    assert f"{news}:11: skipped: not valid UTF-8" in err
    assert "news rows:      11 read, 7 imported, 4 skipped" in out


def test_limit_reads_only_the_first_lines():
    out, _ = _load(limit=3)
    assert "behaviors:      3 lines read, 3 impressions, 0 skipped" in out
    assert "news rows:      3 read, 3 imported, 0 skipped" in out


@pytest.mark.parametrize("which", ["news", "behaviors"])
def test_missing_file_is_a_command_error(tmp_path, which):
    paths = {"news": NEWS, "behaviors": BEHAVIORS, which: tmp_path / "missing.tsv"}
    with pytest.raises(CommandError, match=f"The {which} file does not exist"):
        _load(**paths)
    assert Item.objects.count() == 0
