"""The MovieLens 100K ratings format (``u.data``): ``user \\t item \\t rating \\t timestamp``.

Tab-separated, no header; ratings 1..5, Unix timestamps. Ids are kept as the strings in the
file. A malformed line is skipped and reported with its line number (as the MIND reader
does), so one bad line never stops a run. :func:`read_users` reads only the user column,
for a file whose other columns must not be looked at (``recommend_offline``'s test file).
Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ml_app.datasets.mind import LineError, read_lines

COLUMNS = 4
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Rating:
    """One line of ``u.data``."""

    user_id: str
    item_id: str
    rating: float
    timestamp: int


@dataclass(slots=True)
class ReadReport:
    """What a read skipped: ``(line_number, reason)`` per bad line."""

    lines: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


def _id(value: str, what: str) -> str:
    value = value.strip()
    if not value or any(c.isspace() for c in value):
        raise LineError(f"{what} is empty or contains spaces")
    return value


def parse_rating_line(line: str) -> Rating:
    """Parse one ``u.data`` line; raises :class:`LineError` if it is malformed."""
    columns = line.split("\t")
    if len(columns) != COLUMNS:
        raise LineError(f"expected {COLUMNS} tab-separated columns, found {len(columns)}")
    user, item, rating, timestamp = columns
    try:
        value = float(rating)
    except ValueError:
        raise LineError(f"rating {rating!r} is not a number") from None
    if not 0 < value <= 5:
        raise LineError(f"rating {rating!r} is outside 1..5")
    try:
        when = int(timestamp)
    except ValueError:
        raise LineError(f"timestamp {timestamp!r} is not an integer") from None
    return Rating(_id(user, "user id"), _id(item, "item id"), value, when)


def _parsed(path: Path, report: ReadReport | None, parse: Callable[[str], T]) -> Iterator[T]:
    """``parse`` of every non-blank line of ``path``; bad lines go to ``report``."""
    report = report if report is not None else ReadReport()
    for number, _, text in read_lines(path):
        report.lines = number
        if text is None:
            report.bad.append((number, "not valid UTF-8"))
            continue
        if not text.strip():
            continue
        try:
            yield parse(text)
        except LineError as error:
            report.bad.append((number, str(error)))


def read_ratings(path: Path, report: ReadReport | None = None) -> Iterator[Rating]:
    """Yield the ratings of ``path``; bad lines go to ``report`` (blank lines are ignored)."""
    yield from _parsed(path, report, parse_rating_line)


def read_users(path: Path, report: ReadReport | None = None) -> list[str]:
    """The distinct user ids of ``path`` in first-seen order, reading only the first column."""
    seen: dict[str, None] = {}
    for user in _parsed(path, report, lambda text: _id(text.split("\t", 1)[0], "user id")):
        seen.setdefault(user, None)
    return list(seen)
