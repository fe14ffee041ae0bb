"""COPY helpers and sampling primitives shared by the world's generators."""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

NULL = "\\N"  # COPY text format
FLUSH_LINES = 50_000


def copy_text(value: str) -> str:
    """A value for COPY's text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def copy_ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def fill(template: str, rng: random.Random, section, words) -> str:
    topic, topic2 = (
        rng.sample(section.terms, 2) if len(section.terms) > 1 else (section.terms[0],) * 2
    )
    return template.format(
        topic=topic,
        Topic=topic[:1].upper() + topic[1:],
        topic2=topic2,
        sub=section.sub,
        org=rng.choice(words.ORGS),
        person=f"{rng.choice(words.FIRST_NAMES)} {rng.choice(words.LAST_NAMES)}",
        city=rng.choice(words.CITIES),
        audience=rng.choice(words.AUDIENCES),
        n=rng.choice((3, 4, 5, 7, 10)),
    )


@dataclass
class Pools:
    titles: list[str]
    summaries: list[str]
    sentences: list[tuple[str, int]]


def text_pools(rng: random.Random, sections, words) -> list[Pools]:
    out = []
    for section in sections:
        titles = [fill(rng.choice(words.TITLES), rng, section, words) for _ in range(150)]
        summaries = [fill(rng.choice(words.SUMMARIES), rng, section, words) for _ in range(150)]
        sentences = [fill(rng.choice(words.SENTENCES), rng, section, words) for _ in range(300)]
        out.append(Pools(titles, summaries, [(s, len(s.split())) for s in sentences]))
    return out


@dataclass
class Catalogue:
    """Items in publication order (oldest first), with what the session model needs."""

    ids: list[int] = field(default_factory=list)
    ts: list[float] = field(default_factory=list)
    provider: list[int] = field(default_factory=list)  # provider index
    section: list[int] = field(default_factory=list)
    minutes: list[int] = field(default_factory=list)
    quality: list[float] = field(default_factory=list)
    # Cumulative weights over the whole list (unavailable items weigh 0).
    cum: list[float] = field(default_factory=list)
    # Indices into the lists above, per section and per provider, oldest first.
    by_section: list[list[int]] = field(default_factory=list)
    section_ts: list[list[float]] = field(default_factory=list)
    section_cum: list[list[float]] = field(default_factory=list)
    by_provider: list[list[int]] = field(default_factory=list)
    provider_ts: list[list[float]] = field(default_factory=list)


def cumulative(weights: Iterable[float]) -> list[float]:
    return [0.0, *itertools.accumulate(weights)]


def weighted_in(cum: list[float], lo: int, hi: int, rng: random.Random) -> int | None:
    """An index in [lo, hi) drawn by weight, or None if they all weigh nothing."""
    if hi <= lo or cum[hi] - cum[lo] <= 0:
        return None
    r = cum[lo] + rng.random() * (cum[hi] - cum[lo])
    return min(max(bisect.bisect_right(cum, r) - 1, lo), hi - 1)


class Copier:
    """Buffers COPY lines per table and writes them in chunks."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.buffers: dict[tuple[str, str], list[str]] = {}

    def add(self, table: str, columns: str, line: str) -> None:
        """Queue one line (tab-separated, COPY text format) for ``table (columns)``."""
        buffer = self.buffers.setdefault((table, columns), [])
        buffer.append(line)
        if len(buffer) >= FLUSH_LINES:
            self.flush(table, columns)

    def flush(self, table: str | None = None, columns: str | None = None) -> None:
        targets = [(table, columns)] if table else list(self.buffers)
        for key in targets:
            lines = self.buffers.get(key)  # type: ignore[arg-type]
            if not lines:
                continue
            name, cols = key
            statement = f"COPY {name} ({cols}) FROM STDIN"
            with self.conn.cursor() as cur, cur.copy(statement) as copy:
                copy.write("".join(lines))
            lines.clear()
