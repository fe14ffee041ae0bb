"""The active rules as the feed reads them: loaded once per process into frozen values, and
loaded again when the rules' version (the largest ``RuleVersion`` id) moves.

A request checks the version at most every ``RULES_REFRESH_SECONDS`` (one indexed
``SELECT max(id)``) and reads nothing otherwise; the set is also reloaded every
``RULES_RELOAD_SECONDS`` whatever the version, so that a provider campaign picks up the
provider's new items.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max

from reading_app import public as reading
from rules_app.models import Rule, RuleVersion

# Items of a provider campaign that are candidates: its newest this many.
PROVIDER_CAMPAIGN_ITEMS = 20


@dataclass(frozen=True, slots=True)
class Window:
    starts_at: datetime | None
    ends_at: datetime | None

    def holds(self, now: datetime) -> bool:
        return (self.starts_at is None or self.starts_at <= now) and (
            self.ends_at is None or now < self.ends_at
        )


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    window: Window
    item_ids: tuple[int, ...]  # its items and its provider's newest, ids ascending
    budget: int
    positions: tuple[int, ...]
    user_cap_per_day: int
    relevance_floor: float | None

    @property
    def starts_at(self) -> datetime:
        assert self.window.starts_at is not None
        return self.window.starts_at

    @property
    def ends_at(self) -> datetime:
        assert self.window.ends_at is not None
        return self.window.ends_at


@dataclass(frozen=True, slots=True)
class Boost:
    id: int
    window: Window
    target: str  # provider, category or item
    target_id: int
    multiply: bool
    value: float


@dataclass(frozen=True, slots=True)
class Block:
    id: int
    window: Window
    target: str  # provider, item or keyword
    target_id: int | None
    keyword: str


@dataclass(frozen=True, slots=True)
class Diversity:
    id: int
    window: Window
    max_per_provider: int | None
    max_per_category: int | None
    mmr_lambda: float | None


@dataclass(frozen=True)
class Rules:
    """Every active rule, by kind; what applies at a moment is chosen with ``now``."""

    version: int = 0
    campaigns: tuple[Campaign, ...] = ()
    boosts: tuple[Boost, ...] = ()
    blocks: tuple[Block, ...] = ()
    diversity: tuple[Diversity, ...] = ()
    _keywords: dict[tuple[int, ...], re.Pattern[str] | None] = field(
        default_factory=dict, repr=False, compare=False
    )
    # What the engine derives from these rules once per load (the live boosts by target,
    # the keyword verdicts of the candidate window), by what it depends on.
    derived: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def empty(self) -> bool:
        return not (self.campaigns or self.boosts or self.blocks or self.diversity)

    def blocks_at(self, now: datetime) -> tuple[set[int], set[int], re.Pattern[str] | None]:
        """Blocked providers, items, and one pattern of the blocked keywords, at ``now``."""
        live = [b for b in self.blocks if b.window.holds(now)]
        providers = {b.target_id for b in live if b.target == "provider" and b.target_id}
        items = {b.target_id for b in live if b.target == "item" and b.target_id}
        words = [b for b in live if b.target == "keyword" and b.keyword]
        ids = tuple(b.id for b in words)
        if ids not in self._keywords:
            self._keywords[ids] = keyword_pattern([b.keyword for b in words])
        return providers, items, self._keywords[ids]


def keyword_pattern(keywords: list[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern matching any of ``keywords`` as whole words."""
    if not keywords:
        return None
    alternatives = "|".join(
        r"\s+".join(re.escape(w) for w in k.split()) for k in sorted(set(keywords))
    )
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _window(rule: Rule) -> Window:
    return Window(rule.starts_at, rule.ends_at)


def load(now: datetime) -> Rules:
    """Read the active rules that can still apply (ended ones are left out)."""
    version = RuleVersion.objects.aggregate(v=Max("id"))["v"] or 0
    rows = list(Rule.objects.filter(active=True).exclude(ends_at__lte=now).order_by("id"))
    campaigns, boosts, blocks, diversity = [], [], [], []
    since = now - timedelta(days=settings.EXPERIENCE_CANDIDATE_DAYS)
    for r in rows:
        if r.kind == Rule.Kind.SPONSORED and r.starts_at and r.ends_at:
            ids = set(r.item_ids)
            if r.provider_id:
                ids.update(
                    reading.recent_item_ids(
                        since=since, limit=PROVIDER_CAMPAIGN_ITEMS, provider_ids=[r.provider_id]
                    )
                )
            campaigns.append(
                Campaign(
                    r.id,
                    _window(r),
                    tuple(sorted(ids)),
                    int(r.budget or 0),
                    tuple(sorted(r.positions)),
                    int(r.user_cap_per_day or 1),
                    r.relevance_floor,
                )
            )
        elif r.kind == Rule.Kind.BOOST and r.target_id is not None and r.value is not None:
            boosts.append(
                Boost(
                    r.id,
                    _window(r),
                    r.target,
                    r.target_id,
                    r.mode == Rule.Mode.MULTIPLY,
                    float(r.value),
                )
            )
        elif r.kind == Rule.Kind.BLOCK:
            blocks.append(Block(r.id, _window(r), r.target, r.target_id, r.keyword))
        elif r.kind == Rule.Kind.DIVERSITY:
            diversity.append(
                Diversity(r.id, _window(r), r.max_per_provider, r.max_per_category, r.mmr_lambda)
            )
    return Rules(version, tuple(campaigns), tuple(boosts), tuple(blocks), tuple(diversity))


class _Cache:
    def __init__(self) -> None:
        self.rules: Rules | None = None
        self.checked = 0.0
        self.loaded = 0.0
        self.lock = threading.Lock()


_cache = _Cache()


def current(now: datetime) -> Rules:
    """The process's rules, checked against the version every ``RULES_REFRESH_SECONDS``."""
    clock = time.monotonic()
    rules = _cache.rules
    if rules is not None and clock - _cache.checked < settings.RULES_REFRESH_SECONDS:
        return rules
    with _cache.lock:
        rules = _cache.rules
        stale = rules is None or clock - _cache.loaded >= settings.RULES_RELOAD_SECONDS
        if not stale:
            version = RuleVersion.objects.aggregate(v=Max("id"))["v"] or 0
            stale = rules is None or version != rules.version
        if stale:
            rules = load(now)
            _cache.rules = rules
            _cache.loaded = clock
        _cache.checked = clock
    assert rules is not None
    return rules


def forget() -> None:
    """Drop the process's rules: the next request loads them (tests, after a change)."""
    with _cache.lock:
        _cache.rules = None
        _cache.checked = _cache.loaded = 0.0
