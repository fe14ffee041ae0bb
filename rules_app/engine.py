"""Applying the rules to a ranked feed (docs/RULES.md).

Two steps, called by ``experience_app``'s feed build through ``rules_app.public``:

1. :func:`adjust_ranked`, on the ranked candidates before sections are cut: blocked
   providers, items and title keywords leave; boosts change scores (``rule_boost`` in the
   signals: the change) and the ranking is sorted again.
2. :func:`finish`, on the disjoint sections: blocked items leave the sections that were not
   cut from the ranking (``continue_reading``); each section's first page (but
   ``continue_reading``'s and ``fresh``'s) is capped per provider and per category
   (``rule_demoted`` on the items pushed past it, ``rule_cap_relaxed`` on those left over
   a cap for want of others) and, with a lambda and item embeddings, ordered by MMR
   (``rule_mmr_sim``: the item's largest similarity to those above it); sponsored
   campaigns take their slots of ``for_you`` (``sponsored``: 1, ``campaign``: its id); a
   running campaign's items show nowhere else, nor unlabelled. A section that lost items
   to a blocklist names how many in its first item's ``rule_removed``.

Entries and scored items are the caller's frozen dataclasses: anything with ``item_id``,
``score`` and ``signals``, copied with :func:`dataclasses.replace`; sections are anything
with ``key`` and ``entries``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import numpy as np
from django.conf import settings

from reading_app import public as reading
from rules_app import memo, pacing
from rules_app.snapshot import Boost, Campaign, Diversity, Rules

logger = logging.getLogger(__name__)


class Scored(Protocol):
    @property
    def item_id(self) -> int: ...
    @property
    def score(self) -> float: ...
    @property
    def signals(self) -> Mapping[str, float]: ...


class SectionLike(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def entries(self) -> tuple[Any, ...]: ...


T = TypeVar("T", bound=Scored)
S = TypeVar("S", bound=SectionLike)

# Sections whose order is the ranking's, where MMR may reorder the first page.
MMR_SECTIONS = ("for_you", "because_you_read")
# Never capped nor reordered: the user's own unfinished reads, and the newest issues of
# the newsletters they chose to follow.
UNCAPPED = ("continue_reading", "fresh")
# Keyword blocks: the newest items of the candidate window whose titles are read once per
# rules load (:func:`_keyword_window`).
KEYWORD_WINDOW_ITEMS = 5000


# The init fields of the caller's dataclasses, by type: :func:`_replace` runs once per
# boosted or marked item, where ``dataclasses.replace`` would look them up every time.
_INIT_FIELDS: dict[type, tuple[str, ...]] = {}


def _replace(obj: Any, **changes: Any) -> Any:
    """A copy of the caller's frozen dataclass with ``changes`` (``dataclasses.replace``
    without its per-call look-up of the fields)."""
    cls = type(obj)
    names = _INIT_FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(obj) if f.init)
        _INIT_FIELDS[cls] = names
    if not changes.keys() <= set(names):
        return dataclasses.replace(obj, **changes)  # raises as it does
    return cls(**{n: changes[n] if n in changes else getattr(obj, n) for n in names})


def _with(entry: Any, **signals: float) -> Any:
    return _replace(entry, signals={**entry.signals, **signals})


def blocked_ids(
    rules: Rules, item_ids: Sequence[int], facets: Mapping[int, Any], now: datetime
) -> set[int]:
    """Which of ``item_ids`` a blocklist removes (facets read for those missing)."""
    providers, items, pattern = rules.blocks_at(now)
    if not (providers or items or pattern):
        return set()
    out = items.intersection(item_ids)
    if providers:
        missing = [i for i in item_ids if i not in facets]
        known = {**facets, **reading.item_facets(missing, cached=True)} if missing else facets
        for i in item_ids:
            facet = known.get(i)
            if facet is not None and facet.provider_id in providers:
                out.add(i)
    if pattern is not None:
        window, matched = _keyword_window(rules, pattern, now)
        rest = []
        for i in item_ids:
            if i in out:
                continue
            if i in window:
                if i in matched:
                    out.add(i)
            else:
                rest.append(i)
        if rest:
            titles = memo.titles.get(rest)
            out |= {i for i, title in titles.items() if pattern.search(title)}
    return out


def _keyword_window(
    rules: Rules, pattern: re.Pattern[str], now: datetime
) -> tuple[frozenset[int], frozenset[int]]:
    """The candidate window's newest published items (at most ``KEYWORD_WINDOW_ITEMS``)
    and those of them whose title ``pattern`` matches: read once per rules load (for this
    pattern), so that a cold build reads no title but of the items published since, or
    older than the window. A title edited reaches the rules with their next reload
    (``RULES_RELOAD_SECONDS``), as it reaches the title memo within its TTL."""
    found = rules.derived.get(("keyword_window", pattern.pattern))
    if found is None:
        since = now - timedelta(days=settings.EXPERIENCE_CANDIDATE_DAYS)
        ids = reading.recent_item_ids(since=since, limit=KEYWORD_WINDOW_ITEMS)
        titles = memo.titles.get(ids) if ids else {}
        matched = frozenset(i for i, title in titles.items() if pattern.search(title))
        found = (frozenset(titles), matched)
        rules.derived[("keyword_window", pattern.pattern)] = found
    return found


def _boost_index(rules: Rules, now: datetime) -> dict[tuple[str, int], tuple[Boost, ...]]:
    """The boosts live at ``now`` by (target, target id), in rule order; built once per
    set of live boosts."""
    live = tuple(b for b in rules.boosts if b.window.holds(now))
    key = ("boosts", tuple(b.id for b in live))
    index = rules.derived.get(key)
    if index is None:
        grouped: dict[tuple[str, int], list[Boost]] = {}
        for boost in sorted(live, key=lambda b: b.id):
            grouped.setdefault((boost.target, boost.target_id), []).append(boost)
        index = {k: tuple(v) for k, v in grouped.items()}
        rules.derived[key] = index
    return index


def _boosted(
    scored: T,
    facet: Any,
    index: Mapping[tuple[str, int], tuple[Boost, ...]],
    providers: Mapping[int, tuple[Boost, ...]],
    categories: Mapping[int, tuple[Boost, ...]],
) -> T:
    """``scored`` with the boosts matching its item, provider or categories applied in
    rule order (``index``: the live boosts by target; ``providers``, ``categories``: those
    of these targets by id)."""
    hits: tuple[Boost, ...] = index.get(("item", scored.item_id), ())
    if facet is not None:
        if providers:
            hits += providers.get(facet.provider_id, ())
        if categories:
            for category in facet.category_ids:
                hits += categories.get(category, ())
    if not hits:
        return scored
    score = scored.score
    for boost in sorted(hits, key=_boost_id) if len(hits) > 1 else hits:
        score = score * boost.value if boost.multiply else score + boost.value
    if score == scored.score:
        return scored
    delta = round(score - scored.score, 4)
    return _replace(scored, score=score, signals={**scored.signals, "rule_boost": delta})


def _boost_id(boost: Boost) -> int:
    return boost.id


def adjust_ranked(
    ranked: list[T], facets: Mapping[int, Any], *, rules: Rules, now: datetime
) -> tuple[list[T], int]:
    """``ranked`` less blocked items, boosted and sorted again; and how many left."""
    if not rules.blocks and not rules.boosts:
        return ranked, 0
    gone = blocked_ids(rules, [s.item_id for s in ranked], facets, now) if rules.blocks else ()
    kept = [s for s in ranked if s.item_id not in gone] if gone else list(ranked)
    index = _boost_index(rules, now) if rules.boosts else {}
    if index:
        providers = {k[1]: v for k, v in index.items() if k[0] == "provider"}
        categories = {k[1]: v for k, v in index.items() if k[0] == "category"}
        boosted = [_boosted(s, facets.get(s.item_id), index, providers, categories) for s in kept]
        if any(b is not s for b, s in zip(boosted, kept, strict=True)):
            # Stable: items the boosts left alone keep the ranking's order among equals.
            kept = sorted(boosted, key=lambda s: -s.score)
    return kept, len(ranked) - len(kept)


def _diversity_at(rules: Rules, now: datetime) -> Diversity | None:
    return next((d for d in rules.diversity if d.window.holds(now)), None)


def first_page(
    entries: Sequence[Any],
    *,
    page: int,
    facets: Mapping[int, Any],
    max_per_provider: int | None,
    max_per_category: int | None,
    vectors: Mapping[int, np.ndarray] | None = None,
    mmr_lambda: float | None = None,
) -> tuple[Any, ...]:
    """``entries`` with a first page of at most ``max_per_provider`` items of a provider
    and ``max_per_category`` of a category, chosen in order or, with ``mmr_lambda`` and
    vectors, by maximal marginal relevance (lambda * relevance - (1 - lambda) * the largest
    similarity to the items above; relevance is the score scaled to [0, 1] over the items
    looked at). Items passed over for a cap are marked ``rule_demoted`` and follow the
    first page, in their order. When too few other items are left to fill the page within
    the caps, the first of those passed over fill it, marked ``rule_cap_relaxed``: a
    section never loses items to a cap."""
    mmr = mmr_lambda is not None and bool(vectors)
    window = list(entries)
    if not window:
        return tuple(entries)
    matrix = None
    relevance = [0.0] * len(window)
    if mmr and vectors is not None:
        dim = len(next(iter(vectors.values())))
        zero = np.zeros(dim, dtype=np.float32)
        matrix = np.vstack([vectors.get(e.item_id, zero) for e in window])
        scores = [e.score for e in window]
        low, high = min(scores), max(scores)
        relevance = [(s - low) / (high - low) if high > low else 1.0 for s in scores]
    lam = float(mmr_lambda or 0.0)
    gains = np.asarray(relevance, dtype=np.float64) * lam
    closest = np.zeros(len(window), dtype=np.float64)  # largest similarity to those chosen
    open_ = np.ones(len(window), dtype=bool)
    chosen: list[int] = []
    deferred: list[int] = []
    similarity: dict[int, float] = {}
    providers: dict[int, int] = {}
    categories: dict[int, int] = {}
    left = len(window)  # open
    in_order = 0  # without MMR: the next open item is the next one in order
    while len(chosen) < page and left:
        if matrix is not None:
            pick = int(np.argmax(np.where(open_, gains - (1.0 - lam) * closest, -np.inf)))
        else:
            pick = in_order
            in_order += 1
        open_[pick] = False
        left -= 1
        facet = facets.get(window[pick].item_id)
        if facet is not None:
            over = max_per_provider is not None and (
                providers.get(facet.provider_id, 0) >= max_per_provider
            )
            over = over or (
                max_per_category is not None
                and any(categories.get(c, 0) >= max_per_category for c in facet.category_ids)
            )
            if over:
                deferred.append(pick)
                continue
            providers[facet.provider_id] = providers.get(facet.provider_id, 0) + 1
            for c in facet.category_ids:
                categories[c] = categories.get(c, 0) + 1
        if matrix is not None:
            if chosen and window[pick].item_id in (vectors or {}):
                similarity[pick] = round(float(closest[pick]), 4)
            # Similarities to the item just chosen only (a page is ~10 of ~50 items).
            closest = np.maximum(closest, matrix @ matrix[pick])
        chosen.append(pick)
    pool = (
        [int(i) for i in np.flatnonzero(open_)]
        if matrix is not None
        else list(range(in_order, len(window)))
    )
    out = [
        _with(window[i], rule_mmr_sim=similarity[i]) if i in similarity else window[i]
        for i in chosen
    ]
    if len(chosen) < page and deferred:
        # Too few other items to fill the page within the caps: the best of those passed
        # over fill it (marked), rather than the section losing its depth.
        short = page - len(chosen)
        out += [_with(window[i], rule_cap_relaxed=1.0) for i in deferred[:short]]
        deferred = deferred[short:]
    demoted = set(deferred)
    out += [
        _with(window[i], rule_demoted=1.0) if i in demoted else window[i]
        for i in sorted([*pool, *deferred])
    ]
    return tuple(out)


def _sponsor(
    sections: list[S],
    *,
    user_id: int,
    by_id: Mapping[int, Scored],
    rules: Rules,
    now: datetime,
) -> list[S]:
    """``for_you`` with the live campaigns' items at their slots, paced and capped."""
    mine = next((s for s in sections if s.key == "for_you" and s.entries), None)
    if mine is None:
        return sections
    offers: list[tuple[Campaign, list[Scored]]] = []
    for campaign in rules.campaigns:
        if not campaign.window.holds(now) or campaign.budget < 1:
            continue
        floor = campaign.relevance_floor
        eligible = sorted(
            (
                by_id[i]
                for i in campaign.item_ids
                if i in by_id and (floor is None or by_id[i].score >= floor)
            ),
            key=lambda s: -s.score,
        )
        if eligible:
            offers.append((campaign, eligible))
    if not offers:
        return sections
    counts = pacing.read([c for c, _ in offers], user_id, now)
    if counts is None:
        logger.warning("rules.sponsored_skipped user=%s reason=redis", user_id)
        return sections
    placed: list[tuple[int, Campaign, Scored]] = []
    used: set[int] = set()
    taken_positions: set[int] = set()
    for campaign, eligible in offers:
        delivered, today = counts[campaign.id]
        limit = pacing.allowance(campaign, now)
        queue = iter(s for s in eligible)
        for position in campaign.positions:
            if delivered >= limit or today >= campaign.user_cap_per_day:
                break
            if position in taken_positions:
                continue
            item = next((s for s in queue if s.item_id not in used), None)
            if item is None:
                break
            placed.append((position, campaign, item))
            used.add(item.item_id)
            taken_positions.add(position)
            delivered += 1
            today += 1
    if not placed or not pacing.count([c for _, c, _ in placed], user_id, now):
        return sections
    template = mine.entries[0]
    entries = [e for e in mine.entries if e.item_id not in used]
    for position, campaign, item in sorted(placed, key=lambda p: p[0]):
        entry = _replace(
            template,
            item_id=item.item_id,
            score=round(item.score, 4),
            signals={**item.signals, "sponsored": 1.0, "campaign": float(campaign.id)},
            top_features=(),
        )
        entries.insert(min(position, len(entries)), entry)
    out: list[S] = []
    for s in sections:
        if s is mine:
            out.append(_replace(s, entries=tuple(entries)))
        else:
            kept = tuple(e for e in s.entries if e.item_id not in used)
            out.append(_replace(s, entries=kept) if len(kept) != len(s.entries) else s)
    return out


def finish(
    sections: list[S],
    *,
    user_id: int,
    by_id: Mapping[int, Scored],
    facets: Mapping[int, Any],
    rules: Rules,
    now: datetime,
    degraded: bool = False,
    removed: int = 0,
) -> list[S]:
    """The sections with blocklists, diversity and sponsored slots applied (module doc).
    ``removed``: items :func:`adjust_ranked` took out, named on ``for_you``."""
    if rules.empty:
        return sections
    page = settings.EXPERIENCE_SECTION_PAGE_SIZE
    # Items not from the ranking (continue_reading) were not checked against the blocks.
    unchecked = [e.item_id for s in sections for e in s.entries if e.item_id not in by_id]
    gone = blocked_ids(rules, unchecked, facets, now) if unchecked else set()
    lost: dict[str, int] = {"for_you": removed} if removed else {}
    out: list[S] = []
    for s in sections:
        kept = tuple(e for e in s.entries if e.item_id not in gone)
        if len(kept) != len(s.entries):
            lost[s.key] = lost.get(s.key, 0) + len(s.entries) - len(kept)
            s = _replace(s, entries=kept)
        out.append(s)
    # A running campaign's items show only as sponsored, in their slots: never unlabelled
    # (they are candidates because of the campaign; paced out, capped, below the floor or
    # without Redis, they are not shown at all).
    promoted = {i for c in rules.campaigns if c.window.holds(now) for i in c.item_ids}
    if promoted:
        out = [
            _replace(s, entries=tuple(e for e in s.entries if e.item_id not in promoted))
            if any(e.item_id in promoted for e in s.entries)
            else s
            for s in out
        ]
    diversity = _diversity_at(rules, now)
    if diversity is not None:
        out = _diversify(out, diversity, facets, page)
    if not degraded:
        out = _sponsor(out, user_id=user_id, by_id=by_id, rules=rules, now=now)
    if lost:
        out = [
            _replace(
                s, entries=(_with(s.entries[0], rule_removed=float(lost[s.key])), *s.entries[1:])
            )
            if s.key in lost and s.entries
            else s
            for s in out
        ]
    return [s for s in out if s.entries]


def _diversify(sections: list[S], rule: Diversity, facets: Mapping[int, Any], page: int) -> list[S]:
    capped = [s for s in sections if s.key not in UNCAPPED and s.entries]
    capped_keys = {s.key for s in capped}
    if not capped:
        return sections
    vectors: dict[int, np.ndarray] = {}
    if rule.mmr_lambda is not None:
        wanted = [e.item_id for s in capped if s.key in MMR_SECTIONS for e in s.entries]
        vectors = memo.vectors.get(wanted) if wanted else {}
    missing = [e.item_id for s in capped for e in s.entries if e.item_id not in facets]
    if missing:
        facets = {**facets, **reading.item_facets(missing, cached=True)}
    out: list[S] = []
    for s in sections:
        if s.key not in capped_keys:
            out.append(s)
            continue
        entries = first_page(
            s.entries,
            page=page,
            facets=facets,
            max_per_provider=rule.max_per_provider,
            max_per_category=rule.max_per_category,
            vectors=vectors if s.key in MMR_SECTIONS else None,
            mmr_lambda=rule.mmr_lambda if s.key in MMR_SECTIONS else None,
        )
        out.append(_replace(s, entries=entries))
    return out
