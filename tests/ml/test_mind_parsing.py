"""The MIND line parsers and the mapping to INBO's slugs and names (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ml_app.datasets import mind


def test_behavior_line_is_parsed():
    behavior = mind.parse_behavior_line("42\tU7\t11/9/2019 6:42:51 PM\tN1 N2\tN3-1 N4-0")
    assert behavior.impression_id == 42
    assert behavior.user_id == "U7"
    assert behavior.time == datetime(2019, 11, 9, 18, 42, 51, tzinfo=UTC)
    assert behavior.history == ("N1", "N2")
    assert behavior.candidates == (mind.Candidate("N3", True), mind.Candidate("N4", False))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("42\tU7\t11/9/2019 6:42:51 PM\tN1", "expected 5"),
        ("42\tU7\t13/40/2019 6:42:51 PM\t\tN3-1", "bad time"),
        ("42\tU7\t11/9/2019 6:42:51 PM\t\tN3-7", "bad impression entry 'N3-7'"),
        ("42\tU7\t11/9/2019 6:42:51 PM\t\t-1", "bad impression entry '-1'"),
        ("42\tU7\t11/9/2019 6:42:51 PM\t\t", "no impression entries"),
        ("x\tU7\t11/9/2019 6:42:51 PM\t\tN3-1", "is not a number"),
        ("42\t \t11/9/2019 6:42:51 PM\t\tN3-1", "user id"),
    ],
)
def test_malformed_behavior_lines_say_why(line, reason):
    with pytest.raises(mind.LineError, match=reason):
        mind.parse_behavior_line(line)


def test_news_line_keeps_text_and_rejects_missing_fields():
    row = mind.parse_news_line("N1\tnews\tnewsus\tA title\tAn abstract.\thttps://x.test/1\t[]\t[]")
    assert row == mind.NewsRow(
        "N1", "news", "newsus", "A title", "An abstract.", "https://x.test/1"
    )
    with pytest.raises(mind.LineError, match="title is empty"):
        mind.parse_news_line("N1\tnews\tnewsus\t \t\thttps://x.test/1\t[]\t[]")
    with pytest.raises(mind.LineError, match="not an http"):
        mind.parse_news_line("N1\tnews\tnewsus\tT\t\tftp://x.test/1\t[]\t[]")


def test_slugs_are_unique_and_stable_and_names_readable():
    assert mind.category_slug("news") == "news"
    assert mind.subcategory_slug("video", "news") == "video-news"
    assert mind.subcategory_slug("news", "newsus") == "news-newsus"
    # Names that slugify would merge get a short hash of the raw name.
    assert mind.category_slug("Food & Drink") != mind.category_slug("food-drink")
    assert mind.category_slug("Food & Drink") == mind.category_slug("Food & Drink")
    assert mind.readable("newsus", parent="news") == "US"
    assert mind.readable("foodanddrink") == "Food & Drink"
    assert mind.provider_name("sports", "basketball_nba") == "Sports · Basketball NBA (MIND)"
