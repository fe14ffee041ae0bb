"""Feed building: candidates from several sources, scored together by
:func:`experience_app.ranking.rank`, split into disjoint, typed sections.

What this returns is what the cache keeps (``Feed.to_json``) and pages are cut from; it
neither reads nor writes the feed cache.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings

from experience_app import selectors
from experience_app.ranking import Candidate, Scored, UserContext, rank
from experience_app.services import rerank
from features_app import public as features
from inbo import keys
from inbo import redis as inbo_redis
from reading_app import public as reading

logger = logging.getLogger(__name__)

SECTION_ORDER = ("continue_reading", "for_you", "because_you_read", "trending", "fresh")
# Which section keeps an item that several could show. ``for_you`` ranks the whole pool and
# always has more to show: were it before ``fresh`` and ``trending``, its first page would
# take their newest and most trending items. ``because_you_read`` draws on the categories
# the user just engaged with, exactly what ``for_you`` now favours: it shows the next ones.
CLAIM_ORDER = ("continue_reading", "fresh", "trending", "for_you", "because_you_read")
# Candidate pools: enough to fill every section several pages deep, small enough that a
# cold build (facets, signals, ranking) stays well under 100 ms.
TRENDING_POOL = 120
RECENT_POOL = 200
RELATED_POOL = 40
CO_READ_WINDOW = timedelta(days=7)
# Learned scores read per source (features for the reranker); the best
# ``ML_LEARNED_POOL`` of them also join the candidate pool.
LEARNED_READ = 100


@dataclass(frozen=True, slots=True)
class Entry:
    """One ranked item of a section: its score and the signal values it was ranked on."""

    item_id: int
    score: float
    signals: Mapping[str, float]
    # The reranker's top contributing features, (name, contribution); empty when linear.
    top_features: tuple[tuple[str, float], ...] = ()

    @classmethod
    def of(cls, scored: Scored) -> Entry:
        return cls(scored.item_id, round(scored.score, 4), scored.signals, scored.top_features)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "item_id": self.item_id,
            "score": self.score,
            "signals": self.signals,
        }
        if self.top_features:
            data["top_features"] = [list(pair) for pair in self.top_features]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        top = tuple((str(n), float(c)) for n, c in data.get("top_features", ()))
        return cls(data["item_id"], data["score"], data["signals"], top)


@dataclass(frozen=True, slots=True)
class Section:
    """A titled section of the feed, its entries in the order they are shown."""

    key: str
    title: str
    reason: str
    entries: tuple[Entry, ...]


@dataclass(frozen=True, slots=True)
class Feed:
    """A built feed: every non-empty section, in ``SECTION_ORDER``. ``version`` names it
    (cursors point into it); ``generated_at`` is ISO 8601, as cached and sent."""

    version: str
    generated_at: str
    degraded: bool
    cold_start: bool
    sections: tuple[Section, ...]
    ranker: str = "linear"

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready form the feed snapshot is cached in."""
        return {
            "version": self.version,
            "generated_at": self.generated_at,
            "degraded": self.degraded,
            "cold_start": self.cold_start,
            "ranker": self.ranker,
            "sections": [
                {
                    "key": s.key,
                    "title": s.title,
                    "reason": s.reason,
                    "items": [e.to_json() for e in s.entries],
                }
                for s in self.sections
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Feed:
        return cls(
            version=str(data["version"]),
            generated_at=str(data["generated_at"]),
            degraded=bool(data["degraded"]),
            cold_start=bool(data["cold_start"]),
            ranker=str(data.get("ranker", "linear")),
            sections=tuple(
                Section(
                    s["key"],
                    s["title"],
                    s["reason"],
                    tuple(Entry.from_json(e) for e in s["items"]),
                )
                for s in data["sections"]
            ),
        )


def _gather(user_id: int, now: datetime, degraded: bool):
    """Profile, item signals source and trending list, from Redis or from PostgreSQL."""
    if not degraded:
        try:
            profile = features.user_profile(user_id)
            trending = features.trending(now=now, limit=TRENDING_POOL)
            return profile, trending, False
        except redis.RedisError as exc:
            logger.warning("experience.feed_degraded user=%s error=%s", user_id, exc)
    profile = features.user_profile_from_log(user_id, now=now)
    trending = features.trending_from_log(now=now, limit=TRENDING_POOL)
    return profile, trending, True


def _signals(item_ids: list[int], now: datetime, degraded: bool):
    if not degraded:
        try:
            return features.item_signals(item_ids, now=now, with_counts=True), False
        except redis.RedisError as exc:
            logger.warning("experience.signals_degraded error=%s", exc)
    return features.item_signals_from_log(item_ids, now=now), True


def _learned(user_id: int, degraded: bool) -> dict[str, list[tuple[int, float]]]:
    """The user's precomputed learned candidates by source, best first (one round trip).

    Written by Celery (ALS in ml_app, text embeddings in features_app); a request only
    reads them. Missing, expired or unreachable: no learned candidates, nothing fails.
    """
    if degraded:
        return {}
    try:
        pipe = inbo_redis.state().pipeline(transaction=False)
        for source in keys.LEARNED_SOURCES:
            pipe.zrevrange(
                keys.learned_candidates(source, user_id), 0, LEARNED_READ - 1, withscores=True
            )
        replies = pipe.execute()
    except redis.RedisError as exc:
        logger.warning("experience.learned_unavailable user=%s error=%s", user_id, exc)
        return {}
    return {
        source: [(int(item), float(score)) for item, score in reply]
        for source, reply in zip(keys.LEARNED_SOURCES, replies, strict=True)
    }


# The ranking signal each learned source feeds.
LEARNED_SIGNAL = {"als": "als", "similar": "similarity"}


def build_feed(user_id: int, *, now: datetime, degraded: bool = False) -> Feed:
    """Rank every section for ``user_id`` at ``now`` (what the cache keeps)."""
    profile, trending, degraded = _gather(user_id, now, degraded)
    interests = selectors.interest_category_ids(user_id=user_id)
    subscribed = reading.subscribed_provider_ids(user_id=user_id)
    excluded = selectors.never_again_item_ids(user_id=user_id)
    excluded |= reading.completed_item_ids(user_id=user_id)
    rotate_after = settings.EXPERIENCE_ROTATE_AFTER_IMPRESSIONS
    excluded |= {item for item, n in profile.seen.items() if n >= rotate_after}

    since = now - timedelta(days=settings.EXPERIENCE_CANDIDATE_DAYS)
    continuing = reading.in_progress(
        user_id=user_id,
        since=now - timedelta(days=settings.EXPERIENCE_CONTINUE_MAX_AGE_DAYS),
        limit=settings.EXPERIENCE_SECTION_MAX_ITEMS,
    )
    cold = profile.is_cold
    taste = sorted(
        (c for c, v in profile.category_affinity.items() if v > 0),
        key=lambda c: -profile.category_affinity[c],
    )[:5]
    focus = set(taste) | interests
    recent = reading.recent_item_ids(since=since, limit=RECENT_POOL)
    focused = (
        reading.recent_item_ids(since=since, limit=RECENT_POOL, category_ids=focus) if focus else []
    )
    fresh_ids = (
        reading.recent_item_ids(
            since=since, limit=settings.EXPERIENCE_SECTION_MAX_ITEMS, provider_ids=subscribed
        )
        if subscribed
        else []
    )
    anchor = features.last_engaged_item_id(user_id, since=since)
    related: list[int] = []
    if anchor is not None:
        related = features.co_read(anchor, since=now - CO_READ_WINDOW, limit=RELATED_POOL)
    trending_ids = [item for item, _ in trending]
    learned_lists = _learned(user_id, degraded)
    learned: dict[int, dict[str, float]] = {}
    learned_ids: list[int] = []
    for source, pairs in learned_lists.items():
        for item, score in pairs:
            learned.setdefault(item, {})[LEARNED_SIGNAL[source]] = round(score, 4)
        learned_ids += [item for item, _ in pairs[: settings.ML_LEARNED_POOL]]

    pool = list(
        dict.fromkeys([*focused, *recent, *fresh_ids, *related, *trending_ids, *learned_ids])
    )
    anchor_facets_needed = [anchor] if anchor is not None else []
    facets = reading.item_facets([*pool, *anchor_facets_needed], cached=True)
    if anchor is not None and anchor in facets:
        anchor_categories = set(facets[anchor].category_ids)
        related += [
            i
            for i in pool
            if i != anchor and i in facets and anchor_categories & set(facets[i].category_ids)
        ]
    candidates = [
        Candidate(f.item_id, f.provider_id, f.category_ids, f.published_at)
        for f in facets.values()
        if f.available and f.item_id not in excluded and f.item_id != anchor
    ]
    signals, signals_degraded = _signals([c.item_id for c in candidates], now, degraded)
    degraded = degraded or signals_degraded
    ranked = rank(
        candidates,
        UserContext(profile, frozenset(subscribed), frozenset(interests)),
        signals,
        now=now,
        learned=learned,
    )
    ranker = "linear"
    model = rerank.current() if not degraded else None
    if model is not None:
        ranked = rerank.rerank(ranked, model)
        ranker = model.label
    by_id = {s.item_id: s for s in ranked}
    trending_rank = {item: i for i, item in enumerate(trending_ids)}

    # Name what the user showed most taste for, then what they picked at onboarding.
    named = list(dict.fromkeys([*taste, *sorted(interests)]))[:3]
    names = reading.category_names(named) if named else {}
    anchor_title = ""
    if anchor is not None:
        card = reading.item_cards([anchor]).get(anchor)
        anchor_title = card["title"] if card else ""
    drafts = [
        Section(
            "continue_reading",
            "Continue reading",
            "Pick up where you left off.",
            tuple(
                Entry(item, round(progress, 4), {"progress": round(progress, 4)})
                for item, progress in continuing
                if item not in excluded
            ),
        ),
        Section(
            "for_you",
            "For you",
            (
                "Popular in topics you picked."
                if cold and interests
                else "Popular on INBO right now."
                if cold
                else "Picked for you from " + ", ".join(sorted(names.values())) + "."
                if names
                else "Picked for you."
            ),
            _entries(ranked),
        ),
        Section(
            "because_you_read",
            "Because you read",
            f"Because you read “{anchor_title}”." if anchor_title else "",
            _entries(by_id[i] for i in dict.fromkeys(related) if i in by_id)
            if anchor_title
            else (),
        ),
        Section(
            "trending",
            "Trending",
            "Read most in the last hours.",
            _entries(
                sorted(
                    (by_id[i] for i in trending_ids if i in by_id),
                    key=lambda s: trending_rank[s.item_id],
                )
            ),
        ),
        Section(
            "fresh",
            "Fresh from your subscriptions",
            "The latest from newsletters you follow.",
            _entries(by_id[i] for i in fresh_ids if i in by_id),
        ),
    ]
    sections = [s for s in make_disjoint(drafts) if s.entries]
    if model is not None:
        page = settings.EXPERIENCE_SECTION_PAGE_SIZE
        sections = [
            Section(s.key, s.title, s.reason, explained(s.entries, model, upto=page))
            if s.key in MODEL_ORDERED
            else s
            for s in sections
        ]
    return Feed(
        version=uuid.uuid4().hex,
        generated_at=now.isoformat(),
        degraded=degraded,
        cold_start=cold,
        sections=tuple(sections),
        ranker=ranker,
    )


# Sections in the ranker's order: their items' explanations name the model's top
# contributing features (trending keeps the trending order, fresh the newest first).
MODEL_ORDERED = ("for_you", "because_you_read")


def explained(
    entries: tuple[Entry, ...], model: rerank.LoadedModel, *, upto: int, start: int = 0
) -> tuple[Entry, ...]:
    """``entries`` with the top contributing features of those in ``[start, upto)`` filled
    in (the page being sent: explaining costs far more than scoring)."""
    chosen = entries[start:upto]
    tops = rerank.explain([e.signals for e in chosen], model)
    done = tuple(
        Entry(e.item_id, e.score, e.signals, top) for e, top in zip(chosen, tops, strict=True)
    )
    return (*entries[:start], *done, *entries[upto:])


def _entries(scored: Iterable[Scored]) -> tuple[Entry, ...]:
    return tuple(Entry.of(s) for s in scored)


def make_disjoint(sections: list[Section]) -> list[Section]:
    """The sections with no item twice on one page (nor on later ones): first pages are
    filled in ``CLAIM_ORDER``, then the rest; the order of ``sections`` is kept."""
    page = settings.EXPERIENCE_SECTION_PAGE_SIZE
    limit = settings.EXPERIENCE_SECTION_MAX_ITEMS
    taken: set[int] = set()
    firsts: dict[str, list[Entry]] = {}
    claiming = sorted(sections, key=lambda s: CLAIM_ORDER.index(s.key))
    for s in claiming:
        firsts[s.key] = []
        for x in s.entries:
            if len(firsts[s.key]) >= page:
                break
            if x.item_id not in taken:
                firsts[s.key].append(x)
                taken.add(x.item_id)
    kept: dict[str, tuple[Entry, ...]] = {}
    for s in claiming:
        rest = [x for x in s.entries if x.item_id not in taken]
        rest = rest[: max(0, limit - len(firsts[s.key]))]
        taken.update(x.item_id for x in rest)
        kept[s.key] = (*firsts[s.key], *rest)
    return [Section(s.key, s.title, s.reason, kept[s.key]) for s in sections]
