"""The CI&T DeskDrop format (Kaggle "Articles sharing and reading from CI&T DeskDrop").

Two comma-separated files with a header, fields double-quoted where needed (user agents hold
commas, article texts hold commas, quotes and newlines):

- ``users_interactions*.csv``: ``timestamp, eventType, contentId, personId, sessionId,
  userAgent, userRegion, userCountry``; events VIEW, LIKE, BOOKMARK, FOLLOW, COMMENT CREATED.
- ``articles*.csv`` (``shared_articles.csv`` upstream): ``timestamp, eventType, contentId,
  authorPersonId, ..., url, title, text, lang``; events CONTENT SHARED and CONTENT REMOVED.
  Columns are found by name, so extra columns (the course copy's ``index``) are ignored.

Ids are signed 64-bit integers kept as strings (never floats). A malformed row is skipped and
reported with its line number (the physical line it starts on) and the reason, as the MIND
reader does. Nothing here touches the database.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")

# Implicit-feedback strength of each event type: the weights of the Kaggle notebook
# "Recommender Systems in Python 101" (gspmoreira, the dataset's publisher), the usual
# reference on DeskDrop. A pair's strength is log2(1 + sum of its events' weights), as there,
# so a user who re-views an article many times does not drown out a like.
EVENT_STRENGTH: dict[str, float] = {
    "VIEW": 1.0,
    "LIKE": 2.0,
    "BOOKMARK": 2.5,
    "FOLLOW": 3.0,
    "COMMENT CREATED": 4.0,
}
SHARED = "CONTENT SHARED"
REMOVED = "CONTENT REMOVED"
ARTICLE_EVENTS = (SHARED, REMOVED)
UNKNOWN = ""  # an empty region/country/agent: "unknown" is its own value

INTERACTION_COLUMNS = (
    "timestamp",
    "eventType",
    "contentId",
    "personId",
    "sessionId",
    "userAgent",
    "userRegion",
    "userCountry",
)
ARTICLE_COLUMNS = ("timestamp", "eventType", "contentId", "authorPersonId")
ARTICLE_OPTIONAL = ("url", "title", "text", "lang")
_INT64 = (-(2**63), 2**63 - 1)


class RowError(ValueError):
    """A row that cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class Interaction:
    """One row of ``users_interactions*.csv``."""

    timestamp: int
    event: str
    content_id: str
    person_id: str
    session_id: str
    user_agent: str = UNKNOWN
    region: str = UNKNOWN
    country: str = UNKNOWN

    @property
    def strength(self) -> float:
        return EVENT_STRENGTH[self.event]


@dataclass(frozen=True, slots=True)
class Article:
    """One row of ``articles*.csv``: an article shared, or removed, at a time."""

    timestamp: int
    event: str
    content_id: str
    author_id: str
    url: str = ""
    title: str = ""
    text: str = ""
    lang: str = ""


@dataclass(frozen=True, slots=True)
class SkippedRow:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: skipped: {self.reason}"


@dataclass
class ReadResult(Generic[T]):
    rows: list[T] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)


def pair_strength(total: float) -> float:
    """A (user, item) pair's strength from the sum of its events' weights."""
    return math.log2(1.0 + total)


def _records(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str] | str]]:
    """``(line, row by column name)`` or ``(line, reason)`` for each record after the header."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = [name.strip().removeprefix("\ufeff") for name in next(reader)]
        except StopIteration:
            raise RowError(f"{path}: empty file (no header)") from None
        except csv.Error as error:
            raise RowError(f"{path}: unreadable header: {error}") from None
        missing = [name for name in required if name not in header]
        if missing:
            raise RowError(f"{path}: header lacks {', '.join(missing)}")
        line = reader.line_num + 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield line, f"bad CSV quoting: {error}"
                line = reader.line_num + 1
                continue
            start, line = line, reader.line_num + 1
            if not values:
                continue
            if len(values) != len(header):
                yield start, f"expected {len(header)} columns, found {len(values)}"
                continue
            yield start, dict(zip(header, values, strict=True))


def _int64(value: str, what: str) -> str:
    value = value.strip()
    try:
        number = int(value)
    except ValueError:
        raise RowError(f"{what} {value!r} is not an integer") from None
    if not _INT64[0] <= number <= _INT64[1]:
        raise RowError(f"{what} {value!r} does not fit in 64 bits")
    return str(number)


def _timestamp(value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        raise RowError(f"timestamp {value.strip()!r} is not Unix seconds") from None
    if number < 0:
        raise RowError(f"timestamp {number} is negative")
    return number


def parse_interaction(row: dict[str, str]) -> Interaction:
    event = row["eventType"].strip()
    if event not in EVENT_STRENGTH:
        raise RowError(f"unknown eventType {event!r}")
    return Interaction(
        timestamp=_timestamp(row["timestamp"]),
        event=event,
        content_id=_int64(row["contentId"], "contentId"),
        person_id=_int64(row["personId"], "personId"),
        session_id=_int64(row["sessionId"], "sessionId"),
        user_agent=row["userAgent"].strip(),
        region=row["userRegion"].strip(),
        country=row["userCountry"].strip(),
    )


def parse_article(row: dict[str, str]) -> Article:
    event = row["eventType"].strip()
    if event not in ARTICLE_EVENTS:
        raise RowError(f"unknown eventType {event!r}")
    return Article(
        timestamp=_timestamp(row["timestamp"]),
        event=event,
        content_id=_int64(row["contentId"], "contentId"),
        author_id=_int64(row["authorPersonId"], "authorPersonId"),
        **{name: row.get(name, "").strip() for name in ARTICLE_OPTIONAL},
    )


def _read(
    path: Path, required: tuple[str, ...], parse: Callable[[dict[str, str]], T]
) -> ReadResult[T]:
    result: ReadResult[T] = ReadResult()
    for line, record in _records(path, required):
        try:
            if isinstance(record, str):
                raise RowError(record)
            result.rows.append(parse(record))
        except RowError as error:
            result.skipped.append(SkippedRow(str(path), line, str(error)))
    return result


def read_interactions(path: Path) -> ReadResult[Interaction]:
    """Every valid interaction in file order, and the skipped rows with their line numbers.

    Raises :class:`RowError` when the file has no header or the header lacks a column."""
    return _read(path, INTERACTION_COLUMNS, parse_interaction)


def read_articles(path: Path) -> ReadResult[Article]:
    """Every valid article event in file order, and the skipped rows (as above)."""
    return _read(path, ARTICLE_COLUMNS, parse_article)
