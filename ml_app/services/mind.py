"""Import MIND-format files: categories, providers, items, users and their events.

Idempotent: every row has a stable key (slug, ``mind:…`` external id, ``mind_<user>``
username, uuid5 event id), so loading the same files again creates nothing.

The behaviors file is read twice rather than held in memory: the first pass validates
lines and collects what the catalog needs (users, referenced ids, first times); the
second turns the accepted lines into events, flushed in batches.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from django.core.management.base import OutputWrapper
from django.utils import timezone

from experience_app.public import bar, users_ensure
from features_app.public import EventIn, EventType, events_ingest
from ml_app.datasets import mind
from reading_app.public import (
    CategoryIn,
    ItemIn,
    ProviderIn,
    categories_create_missing,
    items_create_missing,
    providers_create_missing,
)

EVENT_BATCH = 10_000
ITEM_BATCH = 5_000
MAX_REPORTED = 1_000  # skipped lines reported per file; the rest are only counted
HISTORY_OFFSET = timedelta(seconds=1)

Report = Callable[[str], None]
Stream = IO[str] | OutputWrapper | None


@dataclass(frozen=True, slots=True)
class SkippedLine:
    """A malformed line that was not imported."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: skipped: {self.reason}"


@dataclass(slots=True)
class MindSummary:
    """What an import read, created and skipped."""

    news_read: int = 0
    news_imported: int = 0
    news_skipped: int = 0
    behavior_lines: int = 0
    impressions: int = 0
    behaviors_skipped: int = 0
    categories: int = 0
    categories_created: int = 0
    providers: int = 0
    providers_created: int = 0
    items_text: int = 0
    items_id_only: int = 0
    items_text_created: int = 0
    items_id_only_created: int = 0
    users: int = 0
    users_created: int = 0
    impression_events: int = 0
    click_events: int = 0
    history_click_events: int = 0
    events_created: int = 0
    events_existing: int = 0
    seconds: float = 0.0
    skipped: list[SkippedLine] = field(default_factory=list)

    @property
    def lines_skipped(self) -> int:
        return self.news_skipped + self.behaviors_skipped

    @property
    def items_created(self) -> int:
        return self.items_text_created + self.items_id_only_created


@dataclass(slots=True)
class _Scan:
    """What the first pass over the behaviors file learns."""

    accepted: set[int] = field(default_factory=set)  # line numbers
    first_seen: dict[str, datetime] = field(default_factory=dict)  # news id → earliest time
    user_first: dict[str, tuple[datetime, int]] = field(default_factory=dict)  # time, imp. id
    history: dict[str, dict[str, None]] = field(default_factory=dict)  # user → ordered ids
    earliest: datetime | None = None


class _Skips:
    """Counts, keeps and reports skipped lines (the first MAX_REPORTED of each file)."""

    def __init__(self, summary: MindSummary, report: Report | None) -> None:
        self.summary, self.report = summary, report
        self.per_file: dict[str, int] = {}

    def __call__(self, path: Path, line: int, reason: str) -> None:
        seen = self.per_file[str(path)] = self.per_file.get(str(path), 0) + 1
        if seen > MAX_REPORTED:
            return
        skipped = SkippedLine(str(path), line, reason)
        self.summary.skipped.append(skipped)
        if self.report is not None:
            self.report(str(skipped))
            if seen == MAX_REPORTED:
                self.report(f"{path}: more skipped lines are counted but not shown")


def load_mind(
    *,
    news_path: Path,
    behaviors_path: Path,
    limit: int | None = None,
    report: Report | None = None,
    progress: Stream = None,
) -> MindSummary:
    """Import ``news_path`` and ``behaviors_path`` (MIND format) and return a summary.

    ``limit`` reads at most that many lines of each file. ``report`` receives one line per
    skipped (malformed) line: file, line number and reason. ``progress`` is where progress
    bars go when it is a terminal.

    An item's ``published_at`` is the earliest time an event refers to it: the earliest
    impression that shows it, or for an id known only from a history, the history click
    (one second before that user's first impression). MIND has no publication times; this
    keeps every event at or after its item's publication. News never referenced gets the
    earliest impression time of the file (the current time if no behavior line is valid).
    """
    started = time.monotonic()
    summary = MindSummary()
    skip = _Skips(summary, report)
    news = _read_news(news_path, limit, summary, skip, progress)
    scan = _scan_behaviors(behaviors_path, limit, summary, skip, progress)
    for user_id, ids in scan.history.items():
        at = scan.user_first[user_id][0] - HISTORY_OFFSET
        for news_id in ids:
            if news_id not in scan.first_seen or at < scan.first_seen[news_id]:
                scan.first_seen[news_id] = at
    fallback = scan.earliest or timezone.now().replace(microsecond=0)

    item_ids = _write_catalog(news, scan, fallback, summary, progress)
    user_ids, summary.users_created = users_ensure(
        [mind.username(u) for u in scan.user_first],
        joined={mind.username(u): at - HISTORY_OFFSET for u, (at, _) in scan.user_first.items()},
    )
    summary.users = len(user_ids)
    _write_events(behaviors_path, limit, scan, item_ids, user_ids, summary, progress)
    summary.seconds = time.monotonic() - started
    return summary


def _lines(
    path: Path, limit: int | None, progress: Stream, desc: str
) -> Iterator[tuple[int, str | None]]:
    with bar(stream=progress, desc=desc, total=path.stat().st_size, unit="B", unit_scale=True) as b:
        for number, size, text in mind.read_lines(path, limit=limit):
            b.update(size)
            yield number, text


def _read_news(
    path: Path, limit: int | None, summary: MindSummary, skip: _Skips, progress: Stream
) -> dict[str, mind.NewsRow]:
    rows: dict[str, mind.NewsRow] = {}
    first_line: dict[str, int] = {}
    for number, text in _lines(path, limit, progress, "news"):
        if text is not None and not text.strip():
            continue
        summary.news_read += 1
        try:
            if text is None:
                raise mind.LineError("not valid UTF-8")
            row = mind.parse_news_line(text)
            if row.news_id in rows:
                raise mind.LineError(
                    f"duplicate news id {row.news_id} (first on line {first_line[row.news_id]})"
                )
        except mind.LineError as error:
            summary.news_skipped += 1
            skip(path, number, str(error))
            continue
        rows[row.news_id] = row
        first_line[row.news_id] = number
    summary.news_imported = len(rows)
    return rows


def _accepted_behaviors(
    path: Path, limit: int | None, progress: Stream, desc: str, accepted: set[int] | None
) -> Iterator[tuple[int, mind.Behavior | str]]:
    """Parsed lines, or the reason a line is malformed; with ``accepted``, only those."""
    for number, text in _lines(path, limit, progress, desc):
        if accepted is not None:
            if number in accepted and text is not None:
                yield number, mind.parse_behavior_line(text)
            continue
        if text is not None and not text.strip():
            continue
        if text is None:
            yield number, "not valid UTF-8"
            continue
        try:
            yield number, mind.parse_behavior_line(text)
        except mind.LineError as error:
            yield number, str(error)


def valid_behaviors(
    path: Path,
    limit: int | None,
    summary: MindSummary,
    skip: _Skips,
    progress: Stream,
    desc: str,
) -> Iterator[tuple[int, mind.Behavior]]:
    """(line number, behavior) of every valid line in file order; malformed lines and
    repeated impression ids are counted in ``summary`` and reported through ``skip``."""
    impression_line: dict[int, int] = {}
    for number, parsed in _accepted_behaviors(path, limit, progress, desc, None):
        summary.behavior_lines += 1
        if isinstance(parsed, str):
            summary.behaviors_skipped += 1
            skip(path, number, parsed)
            continue
        if (first := impression_line.get(parsed.impression_id)) is not None:
            summary.behaviors_skipped += 1
            skip(path, number, f"duplicate impression id {parsed.impression_id} (line {first})")
            continue
        impression_line[parsed.impression_id] = number
        yield number, parsed


def _scan_behaviors(
    path: Path, limit: int | None, summary: MindSummary, skip: _Skips, progress: Stream
) -> _Scan:
    scan = _Scan()
    for number, parsed in valid_behaviors(path, limit, summary, skip, progress, "behaviors (scan)"):
        scan.accepted.add(number)
        at = parsed.time
        if scan.earliest is None or at < scan.earliest:
            scan.earliest = at
        user_first = scan.user_first.get(parsed.user_id)
        if user_first is None or (at, parsed.impression_id) < user_first:
            scan.user_first[parsed.user_id] = (at, parsed.impression_id)
        for candidate in parsed.candidates:
            seen = scan.first_seen.get(candidate.news_id)
            if seen is None or at < seen:
                scan.first_seen[candidate.news_id] = at
        scan.history.setdefault(parsed.user_id, {}).update(dict.fromkeys(parsed.history))
    summary.impressions = len(scan.accepted)
    return scan


def _write_catalog(
    news: dict[str, mind.NewsRow],
    scan: _Scan,
    fallback: datetime,
    summary: MindSummary,
    progress: Stream,
) -> dict[str, int]:
    """Categories, providers and items; returns item ids by MIND news id."""
    sections = sorted({(row.category, row.subcategory) for row in news.values()})
    categories = [
        CategoryIn(slug=mind.category_slug(c), name=mind.readable(c))
        for c in sorted({c for c, _ in sections})
    ] + [
        CategoryIn(
            slug=mind.subcategory_slug(c, s),
            name=mind.readable(s, parent=c),
            parent_slug=mind.category_slug(c),
        )
        for c, s in sections
    ]
    result = categories_create_missing(categories)
    summary.categories, summary.categories_created = len(categories), result.created

    id_only = sorted(set(scan.first_seen) - news.keys())
    providers = [
        ProviderIn(
            external_id=mind.provider_external_id(c, s),
            slug=mind.provider_slug(c, s),
            name=mind.provider_name(c, s),
            description=(
                f"Articles of the MIND data set in {mind.readable(c)} / "
                f"{mind.readable(s, parent=c)}."
            ),
            category_slugs=(mind.category_slug(c), mind.subcategory_slug(c, s)),
            country="US",
        )
        for c, s in sections
    ]
    if id_only:
        providers.append(
            ProviderIn(
                external_id=mind.UNKNOWN_PROVIDER,
                slug="mind-unknown",
                name="Unknown source (MIND)",
                description="Articles the MIND files refer to by id only, without their text.",
                country="US",
            )
        )
    result = providers_create_missing(providers)
    summary.providers, summary.providers_created = len(providers), result.created

    text_items = [
        ItemIn(
            external_id=mind.item_external_id(row.news_id),
            provider_external_id=mind.provider_external_id(row.category, row.subcategory),
            title=row.title,
            published_at=scan.first_seen.get(row.news_id, fallback),
            summary=row.abstract,
            body="" if row.url else (row.abstract or row.title),
            url=row.url,
            category_slugs=(
                mind.category_slug(row.category),
                mind.subcategory_slug(row.category, row.subcategory),
            ),
        )
        for row in news.values()
    ]
    id_items = [
        ItemIn(
            external_id=mind.item_external_id(news_id),
            provider_external_id=mind.UNKNOWN_PROVIDER,
            title=f"MIND news {news_id} (text not in the data set)",
            published_at=scan.first_seen[news_id],
            available=False,
        )
        for news_id in id_only
    ]
    summary.items_text, summary.items_id_only = len(text_items), len(id_items)
    ids: dict[str, int] = {}
    with bar(stream=progress, desc="items", total=len(text_items) + len(id_items)) as b:
        for items, created in (
            (text_items, "items_text_created"),
            (id_items, "items_id_only_created"),
        ):
            for start in range(0, len(items), ITEM_BATCH):
                batch = items[start : start + ITEM_BATCH]
                result = items_create_missing(batch)
                ids.update(result.ids)
                setattr(summary, created, getattr(summary, created) + result.created)
                b.update(len(batch))
    prefix = len(mind.item_external_id(""))
    return {key[prefix:]: pk for key, pk in ids.items()}


def _write_events(
    path: Path,
    limit: int | None,
    scan: _Scan,
    item_ids: dict[str, int],
    user_ids: dict[str, int],
    summary: MindSummary,
    progress: Stream,
) -> None:
    """Impression and click events of the accepted lines, then the history clicks."""
    batch: list[EventIn] = []

    def flush(force: bool = False) -> None:
        if batch and (force or len(batch) >= EVENT_BATCH):
            result = events_ingest(batch)
            summary.events_created += result.created
            summary.events_existing += result.duplicates
            batch.clear()

    lines = _accepted_behaviors(path, limit, progress, "behaviors (events)", scan.accepted)
    for _, parsed in lines:
        if isinstance(parsed, str):  # never: only accepted lines come back
            continue
        user_id = user_ids[mind.username(parsed.user_id)]
        clicked: dict[str, int] = {}
        shown: dict[str, int] = {}
        for position, candidate in enumerate(parsed.candidates):
            shown.setdefault(candidate.news_id, position)
            if candidate.clicked:
                clicked.setdefault(candidate.news_id, position)
        for news_id, position in shown.items():
            batch.append(
                _event(parsed, user_id, item_ids[news_id], news_id, EventType.IMPRESSION, position)
            )
        for news_id, position in clicked.items():
            batch.append(
                _event(parsed, user_id, item_ids[news_id], news_id, EventType.CLICK, position)
            )
        summary.impression_events += len(shown)
        summary.click_events += len(clicked)
        flush()

    for user, ids in bar(scan.history.items(), stream=progress, desc="history clicks"):
        at, impression_id = scan.user_first[user]
        user_id = user_ids[mind.username(user)]
        for news_id in ids:
            batch.append(
                EventIn(
                    user_id=user_id,
                    item_id=item_ids[news_id],
                    event_type=EventType.CLICK,
                    occurred_at=at - HISTORY_OFFSET,
                    event_id=mind.history_event_id(user, news_id),
                    source=mind.SOURCE,
                    context={"from": "history", "impression_id": impression_id},
                )
            )
        summary.history_click_events += len(ids)
        flush()
    flush(force=True)


def _event(
    behavior: mind.Behavior,
    user_id: int,
    item_id: int,
    news_id: str,
    event_type: EventType,
    position: int,
) -> EventIn:
    return EventIn(
        user_id=user_id,
        item_id=item_id,
        event_type=event_type,
        occurred_at=behavior.time,
        event_id=mind.impression_event_id(behavior.impression_id, news_id, event_type.value),
        source=mind.SOURCE,
        context={"impression_id": behavior.impression_id, "position": position},
    )
