"""The MIND format (Microsoft News Dataset): line parsers and the mapping to INBO's ids.

Both files are tab-separated without a header. ``news.tsv``: ``news_id, category,
subcategory, title, abstract, url, title_entities, abstract_entities``. ``behaviors.tsv``:
``impression_id, user_id, time, history, impressions``. Every parser raises
:class:`LineError` with a short reason for a malformed line, so a loader can skip and
report it. Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.utils.text import slugify

NEWS_COLUMNS = 8
BEHAVIOR_COLUMNS = 5
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
SOURCE = "mind"
UNKNOWN_PROVIDER = "mind:provider:unknown"
# Column limits of the target models (external ids, usernames, URLs).
MAX_ID_LENGTH = 150
MAX_URL_LENGTH = 1000
MAX_NAME_LENGTH = 80  # a category or subcategory name
MAX_SLUG_PART = 60  # parent and child parts fit Category.slug (140) and Provider.slug (220)
# Fixed namespace: the same (impression, news, type) gives the same event id everywhere.
EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://inbo.app/datasets/mind/events")

_TOKEN = re.compile(r"^(?P<news_id>[^\s-]+)-(?P<label>[01])$")
_NAMES = {
    "foodanddrink": "Food & Drink",
    "middleeast": "Middle East",
    "northamerica": "North America",
    "tv": "TV",
}
_ACRONYMS = {"us", "uk", "nfl", "nba", "mlb", "nhl", "ncaa", "wnba", "mma", "tv", "diy", "ufc"}


class LineError(ValueError):
    """A line that cannot be imported; the message says why."""


@dataclass(frozen=True, slots=True)
class NewsRow:
    """One article of ``news.tsv`` (the entity columns are not used)."""

    news_id: str
    category: str
    subcategory: str
    title: str
    abstract: str
    url: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """One entry of an impression: a news id shown, and whether it was clicked."""

    news_id: str
    clicked: bool


@dataclass(frozen=True, slots=True)
class Behavior:
    """One line of ``behaviors.tsv``: an impression shown to a user at a time."""

    impression_id: int
    user_id: str
    time: datetime
    history: tuple[str, ...]
    candidates: tuple[Candidate, ...]


def read_lines(path: Path, *, limit: int | None = None) -> Iterator[tuple[int, int, str | None]]:
    """Yield ``(line_number, byte_length, text)`` for each line, numbered from 1.

    ``text`` is ``None`` for a line that is not valid UTF-8 (the caller reports it).
    Stops after ``limit`` lines when given. Blank lines are yielded too (as "").
    """
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if limit is not None and number > limit:
                return
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield number, len(raw), None
                continue
            if number == 1:
                text = text.removeprefix("\ufeff")
            yield number, len(raw), text.rstrip("\r\n")


def _columns(line: str, expected: int) -> list[str]:
    columns = line.split("\t")
    if len(columns) != expected:
        raise LineError(f"expected {expected} tab-separated columns, found {len(columns)}")
    return columns


def _news_id(value: str, what: str) -> str:
    if not value or any(c.isspace() for c in value):
        raise LineError(f"{what} is empty or contains spaces")
    if len(value) > MAX_ID_LENGTH:
        raise LineError(f"{what} is longer than {MAX_ID_LENGTH} characters")
    return value


def parse_news_line(line: str) -> NewsRow:
    """Parse one line of ``news.tsv``; raises :class:`LineError` if it is malformed."""
    news_id, category, subcategory, title, abstract, url, _, _ = _columns(line, NEWS_COLUMNS)
    news_id = _news_id(news_id.strip(), "news id")
    category, subcategory, title = category.strip(), subcategory.strip(), title.strip()
    if not category or not subcategory:
        raise LineError("category or subcategory is empty")
    if max(len(category), len(subcategory)) > MAX_NAME_LENGTH:
        raise LineError(f"category or subcategory is longer than {MAX_NAME_LENGTH} characters")
    if not title:
        raise LineError("title is empty")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise LineError(f"url is longer than {MAX_URL_LENGTH} characters")
    if url and not url.startswith(("http://", "https://")):
        raise LineError("url is not an http(s) URL")
    return NewsRow(news_id, category, subcategory, title, abstract.strip(), url)


def parse_time(value: str) -> datetime:
    """MIND's ``MM/DD/YYYY h:mm:ss AM/PM`` (UTC) as an aware datetime."""
    try:
        return datetime.strptime(value.strip(), TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise LineError(f"bad time {value.strip()!r} (expected MM/DD/YYYY h:mm:ss AM/PM)") from None


def parse_candidate(token: str) -> Candidate:
    """``N123-1`` (shown and clicked) or ``N123-0`` (shown, not clicked)."""
    match = _TOKEN.match(token)
    if match is None:
        raise LineError(f"bad impression entry {token!r} (expected <news id>-0 or <news id>-1)")
    return Candidate(_news_id(match["news_id"], "news id"), match["label"] == "1")


def parse_behavior_line(line: str) -> Behavior:
    """Parse one line of ``behaviors.tsv``; raises :class:`LineError` if it is malformed."""
    impression_id, user_id, time, history, impressions = _columns(line, BEHAVIOR_COLUMNS)
    impression_id, user_id = impression_id.strip(), user_id.strip()
    if not impression_id.isdigit():
        raise LineError(f"impression id {impression_id!r} is not a number")
    if not user_id or any(c.isspace() for c in user_id) or len(user_id) > MAX_ID_LENGTH:
        raise LineError(f"user id {user_id!r} is empty, has spaces or is too long")
    candidates = tuple(parse_candidate(token) for token in impressions.split())
    if not candidates:
        raise LineError("no impression entries")
    return Behavior(
        impression_id=int(impression_id),
        user_id=user_id,
        time=parse_time(time),
        history=tuple(_news_id(n, "history news id") for n in history.split()),
        candidates=candidates,
    )


# --- Mapping to INBO's ids and names -------------------------------------------------------


def _slug(raw: str) -> str:
    """A slug for a MIND name, stable and unique per name: when slugify loses information
    ("Food & Drink" and "food-drink" would meet), a short hash of the raw name is added."""
    slug = slugify(raw)
    if slug != raw or len(slug) > MAX_SLUG_PART:
        digest = hashlib.sha1(raw.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]
        slug = f"{slug[: MAX_SLUG_PART - 9]}-{digest}" if slug else digest
    return slug


def category_slug(category: str) -> str:
    """Slug of a top-level category: ``news``."""
    return _slug(category)


def subcategory_slug(category: str, subcategory: str) -> str:
    """Slug of a subcategory, prefixed by its parent's because MIND repeats subcategory
    names under different categories (``video/news``, ``news/newsus``): ``news-newsus``."""
    return f"{category_slug(category)}-{_slug(subcategory)}"


def readable(raw: str, *, parent: str = "") -> str:
    """A display name: ``football_nfl`` → "Football NFL", ``newspolitics`` under ``news`` →
    "Politics" (the parent's name repeated as a prefix is dropped)."""
    if raw.lower() in _NAMES:
        return _NAMES[raw.lower()]
    name = raw
    if parent and name.lower().startswith(parent.lower()) and len(name) > len(parent):
        name = name[len(parent) :]
    words = [w for w in re.split(r"[_\s-]+", name) if w]
    return " ".join(w.upper() if w.lower() in _ACRONYMS else w.capitalize() for w in words) or raw


def provider_external_id(category: str, subcategory: str) -> str:
    return f"mind:provider:{category}:{subcategory}"


def provider_slug(category: str, subcategory: str) -> str:
    return f"mind-{subcategory_slug(category, subcategory)}"


def provider_name(category: str, subcategory: str) -> str:
    """E.g. "News · Politics (MIND)": which section of the data set the provider stands for."""
    return f"{readable(category)} · {readable(subcategory, parent=category)} (MIND)"


def item_external_id(news_id: str) -> str:
    return f"mind:news:{news_id}"


def username(user_id: str) -> str:
    return f"mind_{user_id}"


def impression_event_id(impression_id: int, news_id: str, event_type: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, f"{impression_id}:{news_id}:{event_type}")


def history_event_id(user_id: str, news_id: str) -> uuid.UUID:
    return uuid.uuid5(EVENT_NAMESPACE, f"{user_id}:{news_id}:history")
