"""Feed building: candidates from several sources, scored together by
:func:`experience_app.ranking.rank`, split into disjoint, typed sections.

What this returns is what the cache keeps (``Feed.to_json``) and pages are cut from; it
neither reads nor writes the feed cache.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import redis
from django.conf import settings

from experience_app import selectors, treatments
from experience_app.ranking import Candidate, Scored, UserContext, Weights, rank, tiebreak
from experience_app.services import rerank
from experience_app.services.feed.context_signals import time_place_signals
from experience_app.time_place import Place
from experience_app.treatments import EMPTY, Decision, Treatment
from features_app import public as features
from inbo import keys
from inbo import redis as inbo_redis
from reading_app import public as reading
from rules_app import public as rules

logger = logging.getLogger(__name__)

SECTION_ORDER = (
    "continue_reading",
    "up_next",
    "for_you",
    "because_you_read",
    "trending",
    "fresh",
)
# Which section keeps an item that several could show. ``for_you`` ranks the whole pool and
# always has more to show: were it before ``fresh`` and ``trending``, its first page would
# take their newest and most trending items. ``because_you_read`` draws on the categories
# the user just engaged with, exactly what ``for_you`` now favours: it shows the next ones.
# ``up_next`` follows what the user is reading right now: it claims its items first.
CLAIM_ORDER = (
    "continue_reading",
    "up_next",
    "fresh",
    "trending",
    "for_you",
    "because_you_read",
)
# Candidate pools: enough to fill every section several pages deep, small enough that a
# cold build (facets, signals, ranking) stays well under 100 ms.
TRENDING_POOL = 120
RECENT_POOL = 200
RELATED_POOL = 40
# Session-kNN's next reads after the current session (``up_next`` and the ``session`` signal).
SESSION_POOL = 40
CO_READ_WINDOW = timedelta(days=7)
# Cold start: a user with picked topics gets at least this share of ``for_you`` from them
# (their subcategories included), ``1 / (1 + n / COLD_START_EVENTS)`` after ``n`` feedback
# events (anything but impressions): all of it at first, half after 10, a fifth after 40.
COLD_START_EVENTS = 10.0
# Items of the picked topics are candidates this long after publication (longer than other
# candidates): a topic with few recent items still fills the cold-start share.
PICKED_DAYS = 60
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
    # The variants it was built under ({experiment: variant}), the treatment's signature,
    # and the random choices made with their propensities (experiments, issue 12).
    experiments: Mapping[str, str] = dataclasses.field(default_factory=dict)
    treatment: str = ""
    decisions: tuple[Decision, ...] = ()

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
            "experiments": dict(self.experiments),
            "treatment": self.treatment,
            "decisions": [d.to_json() for d in self.decisions],
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
            experiments=dict(data.get("experiments") or {}),
            treatment=str(data.get("treatment", "")),
            decisions=tuple(_decision(d) for d in data.get("decisions") or ()),
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


def _decision(data: Mapping[str, Any]) -> Decision:
    return Decision(
        kind=str(data["kind"]),
        key=str(data["key"]),
        arm=str(data["arm"]),
        propensity=float(data["propensity"]),
        context=dict(data.get("context") or {}),
        candidates=tuple(data.get("candidates") or ()),
        payload=dict(data.get("payload") or {}),
    )


def _session(
    user_id: int, now: datetime, off: bool
) -> tuple[features.CurrentSession | None, list[tuple[int, float]]]:
    """The user's current reading session and session-kNN's next reads after it, best
    first with scores in [0, 1] (two round trips). No session, switched off, or Redis
    unreachable: nothing, and nothing fails."""
    if off:
        return None, []
    try:
        session = features.current_session(user_id, now=now)
        if session is None:
            return None, []
        return session, features.session_next_reads(session, limit=SESSION_POOL)
    except redis.RedisError as exc:
        logger.warning("experience.session_unavailable user=%s error=%s", user_id, exc)
        return None, []


# The ranking signal each learned source feeds.
LEARNED_SIGNAL = {"als": "als", "similar": "similarity"}


def _weights(treatment: Treatment) -> Weights | None:
    """The ranking weights under ``treatment`` (None: the settings' defaults)."""
    if not treatment.weights:
        return None
    known = {f.name for f in dataclasses.fields(Weights)}
    overrides = {k: float(v) for k, v in treatment.weights.items() if k in known}
    return dataclasses.replace(Weights.from_settings(), **overrides)


def _model(treatment: Treatment, degraded: bool) -> rerank.LoadedModel | None:
    """The reranker the treatment asks for: the active one by default, none for
    ``"linear"``, a pinned version for ``"reranker:v<N>"`` (unusable: linear)."""
    if degraded or treatment.reranker == "linear":
        return None
    if treatment.reranker is None:
        return rerank.current()
    return rerank.pinned(treatment.reranker)


def build_feed(
    user_id: int,
    *,
    now: datetime,
    degraded: bool = False,
    treatment: Treatment = EMPTY,
    place: Place | None = None,
    segment: features.UserSegment | None = None,
) -> Feed:
    """Rank every section for ``user_id`` at ``now`` (what the cache keeps), under the
    user's ``treatment`` (experiments: weights, reranker, sources, section order, bandit,
    exploration slot; ``experience_app.treatments``). ``place``: where a trusted proxy says
    the reader is (their profile's place wins). ``segment``: the user's segments
    (``features_app.public.user_segment``), the ``engagement_level`` signal."""
    off = treatment.sources_off
    # Parts an operator switched off (settings.EXPERIENCE_PERSONALIZATION_OFF).
    disabled = settings.EXPERIENCE_PERSONALIZATION_OFF
    with_rules = "rules" not in disabled
    profile, trending, degraded = _gather(user_id, now, degraded)
    # Muted providers and topics leave every section (user control): read with the picks.
    interests, muted_providers, muted_categories = selectors.interests_and_mutes(user_id=user_id)
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
        (c for c, v in profile.category_affinity.items() if v > 0 and c not in muted_categories),
        key=lambda c: -profile.category_affinity[c],
    )[:5]
    # A topic matches items tagged with its subcategories: ``picked`` is the picked topics
    # and their children, ``children`` maps the children of every topic named below.
    named_topics = interests | set(taste) | muted_categories
    children = reading.child_category_parents(named_topics) if named_topics else {}
    # A muted topic takes its subtopics with it.
    muted_categories |= {c for c, p in children.items() if p in muted_categories}
    interests -= muted_categories
    taste = [c for c in taste if c not in muted_categories]
    interest_parents = {c: p for c, p in children.items() if p in interests}
    picked = interests | set(interest_parents)
    focus = set(taste) | picked
    recent = [] if "recent" in off else reading.recent_item_ids(since=since, limit=RECENT_POOL)
    focused = (
        reading.recent_item_ids(since=since, limit=RECENT_POOL, category_ids=focus)
        if focus and "focused" not in off
        else []
    )
    if picked and "focused" not in off:
        focused += reading.recent_item_ids(
            since=now - timedelta(days=max(PICKED_DAYS, settings.EXPERIENCE_CANDIDATE_DAYS)),
            limit=RECENT_POOL,
            category_ids=picked,
        )
    fresh_ids = (
        reading.recent_item_ids(
            since=since, limit=settings.EXPERIENCE_SECTION_MAX_ITEMS, provider_ids=subscribed
        )
        if subscribed and "fresh" not in off
        else []
    )
    anchor = None if "related" in off else features.last_engaged_item_id(user_id, since=since)
    related: list[int] = []
    if anchor is not None:
        related = features.co_read(anchor, since=now - CO_READ_WINDOW, limit=RELATED_POOL)
    trending_ids = [] if "trending" in off else [item for item, _ in trending]
    learned_lists = {
        source: pairs for source, pairs in _learned(user_id, degraded).items() if source not in off
    }
    learned: dict[int, dict[str, float]] = {}
    learned_ids: list[int] = []
    for source, pairs in learned_lists.items():
        for item, score in pairs:
            learned.setdefault(item, {})[LEARNED_SIGNAL[source]] = round(score, 4)
        learned_ids += [item for item, _ in pairs[: settings.ML_LEARNED_POOL]]
    session, next_reads = _session(
        user_id, now, degraded or "session" in off or "session" in disabled
    )
    for item, score in next_reads:
        learned.setdefault(item, {})["session"] = score
    session_ids = [item for item, _ in next_reads]

    pool = list(
        dict.fromkeys(
            [*focused, *recent, *fresh_ids, *related, *trending_ids, *learned_ids, *session_ids]
        )
    )
    # Sponsored campaigns' items are candidates (business rules, rules_app).
    campaign_ids = rules.campaign_item_ids(now) if with_rules else []
    pool = list(dict.fromkeys([*pool, *campaign_ids]))
    anchor_facets_needed = [anchor] if anchor is not None else []
    # Dismissed or hidden lately: their near-copies do not follow the anchor.
    rejected = (
        selectors.rejected_item_ids(user_id=user_id, since=since) if anchor is not None else set()
    )
    muting = [i for i, _ in continuing] if muted_providers or muted_categories else []
    facets = reading.item_facets([*pool, *anchor_facets_needed, *rejected, *muting], cached=True)
    muted = {
        f.item_id
        for f in facets.values()
        if f.provider_id in muted_providers or muted_categories.intersection(f.category_ids)
    }
    excluded |= muted
    candidates = [
        Candidate(f.item_id, f.provider_id, f.category_ids, f.published_at)
        for f in facets.values()
        if f.available and f.item_id not in excluded and f.item_id != anchor
    ]
    signals, signals_degraded = _signals([c.item_id for c in candidates], now, degraded)
    degraded = degraded or signals_degraded
    # Time and place signals (issue 13) travel with the learned scores, per item.
    if "time_place" not in disabled:
        for item, values in time_place_signals(
            user_id, candidates, facets, now=now, degraded=degraded, proxy_place=place
        ).items():
            if values:
                learned.setdefault(item, {}).update(values)
    ranked = rank(
        candidates,
        UserContext(
            profile,
            frozenset(subscribed),
            frozenset(interests),
            interest_parents,
            engagement_level=segment.engagement_level if segment is not None else None,
        ),
        signals,
        now=now,
        weights=_weights(treatment),
        learned=learned,
    )
    ranker = "linear"
    model = _model(treatment, degraded)
    if model is not None:
        ranked = rerank.rerank(ranked, model)
        ranker = model.label
    # Business rules (rules_app): blocklists and boosts, before the sections are cut.
    rules_removed = 0
    if with_rules:
        ranked, rules_removed = rules.adjust_ranked(ranked, facets, now=now)
    in_picked = {c.item_id for c in candidates if picked.intersection(c.category_ids)}
    if interests:
        ranked = picked_first(ranked, in_picked, share=cold_start_share(profile.event_counts))
    decisions: list[Decision] = []
    if treatment.explore:
        # Items another section shows on its first page are not drawn (they would be
        # claimed there, not shown in the slot).
        page = settings.EXPERIENCE_SECTION_PAGE_SIZE
        claimed = {i for i, _ in continuing} | set(trending_ids[:page]) | set(fresh_ids[:page])
        # A running campaign's items are never drawn: they show only in their sponsored slots.
        claimed |= set(campaign_ids)
        ranked, explored = explore_slot(
            ranked, treatment.explore, now=now, candidates=candidates, exclude=claimed
        )
        if explored is not None:
            decisions.append(explored)
    by_id = {s.item_id: s for s in ranked}
    because = (
        related_order(
            anchor,
            related,
            pool,
            facets,
            by_id,
            near_copies_of=[facets[r] for r in rejected if r in facets],
        )
        if anchor is not None and anchor in facets
        else []
    )
    if because and rejected:
        because = without_similar(because, rejected)
    trending_rank = {item: i for i, item in enumerate(trending_ids)}

    # Name what the user showed most taste for, then what they picked at onboarding.
    named = list(dict.fromkeys([*taste, *sorted(interests)]))[:3]
    names = reading.category_names(named) if named else {}
    anchor_title = ""
    if anchor is not None and anchor not in muted:
        card = reading.item_cards([anchor]).get(anchor)
        anchor_title = card["title"] if card else ""
    # ``up_next`` names the session's last item (the read its items follow).
    session_title = ""
    if session is not None and session_ids:
        last = session.items[-1]
        if last == anchor:  # mostly: the last item engaged with, as the session's
            session_title = anchor_title
        else:
            card = reading.item_cards([last]).get(last)
            session_title = card["title"] if card else ""
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
            "up_next",
            "Up next",
            f"You just read “{session_title}”: sessions like yours went on to these."
            if session_title
            else "",
            # Ordered by the session score, shown as the entry's score (as progress is).
            tuple(
                Entry(i, score, by_id[i].signals, by_id[i].top_features)
                for i, score in next_reads
                if i in by_id
            )
            if session_title
            else (),
        ),
        Section("for_you", "For you", "", _entries(ranked)),
        Section(
            "because_you_read",
            "Because you read",
            f"Because you read “{anchor_title}”." if anchor_title else "",
            _entries(because) if anchor_title else (),
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
    order: tuple[str, ...] | None = treatment.section_order
    if treatment.bandit:
        context = {"segment": "cold" if cold else "warm", "daypart": now.hour // 6}
        chosen = treatments.choose(treatment.bandit, user_id, context, now)
        if chosen is not None:
            decisions.append(chosen)
            order = tuple(chosen.payload.get("order") or ()) or order
    sections = [s for s in make_disjoint(drafts) if s.entries]
    # Business rules: blocklists everywhere, diversity on first pages, sponsored slots.
    if with_rules:
        sections = rules.apply(
            sections,
            user_id=user_id,
            by_id=by_id,
            facets=facets,
            now=now,
            degraded=degraded,
            removed=rules_removed,
        )
    # The reason of ``for_you`` is chosen once its items are known: it holds for each.
    categories_of = {c.item_id: c.category_ids for c in candidates}
    sections = [
        dataclasses.replace(
            s,
            reason=for_you_reason(
                [categories_of.get(e.item_id, ()) for e in s.entries],
                cold=cold,
                picked=picked,
                names=names,
                children=children,
            ),
        )
        if s.key == "for_you"
        else s
        for s in sections
    ]
    if order:
        sections = ordered(sections, order)
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
        experiments=treatment.experiments_json(),
        treatment=treatment.signature(),
        decisions=tuple(decisions),
    )


def cold_start_share(event_counts: Mapping[str, int]) -> float:
    """The least share of ``for_you`` from the picked topics after the user's feedback."""
    feedback = sum(n for kind, n in event_counts.items() if kind != "impression")
    return 1.0 / (1.0 + max(0, feedback) / COLD_START_EVENTS)


def picked_first(ranked: list[Scored], in_picked: set[int], *, share: float) -> list[Scored]:
    """``ranked`` with items of the picked topics moved up so that every prefix holds at
    least ``share`` of them (rounded), while there are any; otherwise the ranking's order
    (each part keeps it). A quota, not a score: the signals stay what the ranking saw."""
    picked = [s for s in ranked if s.item_id in in_picked]
    if not picked or share <= 0:
        return ranked
    out: list[Scored] = []
    used: set[int] = set()
    p = 0  # next picked item not yet placed
    n = 0  # next item of the ranking
    taken = 0
    while len(out) < len(ranked):
        while p < len(picked) and picked[p].item_id in used:
            p += 1
        while n < len(ranked) and ranked[n].item_id in used:
            n += 1
        owed = taken < math.floor(share * (len(out) + 1) + 0.5)
        nxt = picked[p] if p < len(picked) and (owed or n >= len(ranked)) else ranked[n]
        out.append(nxt)
        used.add(nxt.item_id)
        taken += nxt.item_id in in_picked
    return out


def related_order(
    anchor: int,
    co_read: list[int],
    pool: list[int],
    facets: Mapping[int, reading.ItemFacets],
    by_id: Mapping[int, Scored],
    *,
    near_copies_of: Iterable[reading.ItemFacets] = (),
) -> list[Scored]:
    """``because_you_read`` in its own order: the ``co_read`` items (closest first), then
    ``pool`` items sharing a category with the anchor, by share of categories in common
    (Jaccard) then rank score. Items with the provider and a category of a dismissed or
    hidden item (``near_copies_of``) are left out: a near-copy of what the user just
    rejected never follows what they read."""
    rejected = {(f.provider_id, c) for f in near_copies_of for c in f.category_ids}
    anchor_categories = set(facets[anchor].category_ids)

    def near_copy(item: int) -> bool:
        f = facets.get(item)
        return f is not None and any((f.provider_id, c) in rejected for c in f.category_ids)

    def closeness(s: Scored) -> tuple[float, float, int]:
        cats = set(facets[s.item_id].category_ids)
        jaccard = len(cats & anchor_categories) / len(cats | anchor_categories or {0})
        return (-jaccard, -s.score, tiebreak(s.item_id))

    first = [by_id[i] for i in dict.fromkeys(co_read) if i in by_id]
    seen = {s.item_id for s in first}
    rest = [
        by_id[i]
        for i in dict.fromkeys(pool)
        if i in by_id
        and i not in seen
        and i in facets
        and anchor_categories.intersection(facets[i].category_ids)
    ]
    return [s for s in [*first, *sorted(rest, key=closeness)] if not near_copy(s.item_id)]


# ``because_you_read`` items whose text says what a dismissed or hidden item said (cosine
# of their text embeddings at least EXPERIENCE_NEAR_COPY_SIMILARITY) are near-copies too; the
# first this many of the section are checked (its first pages), one query for the vectors.
NEAR_COPY_CHECK = 60


def without_similar(ranked: list[Scored], rejected: Iterable[int]) -> list[Scored]:
    """``ranked`` less the items among its first ``NEAR_COPY_CHECK`` whose text embedding
    is within ``EXPERIENCE_NEAR_COPY_SIMILARITY`` (cosine) of a ``rejected`` item's. Items or
    rejected items without a vector are kept (the provider/category rule still holds)."""
    head = [s.item_id for s in ranked[:NEAR_COPY_CHECK]]
    rejected = list(rejected)
    vectors = features.item_embeddings([*rejected, *head])
    references = [vectors[r] for r in rejected if r in vectors]
    if not references:
        return ranked
    matrix = np.stack(references)  # unit-length rows: a dot product is the cosine
    threshold = settings.EXPERIENCE_NEAR_COPY_SIMILARITY
    near = {i for i in head if i in vectors and float((matrix @ vectors[i]).max()) >= threshold}
    return [s for s in ranked if s.item_id not in near] if near else ranked


def for_you_reason(
    item_categories: list[tuple[int, ...]],
    *,
    cold: bool,
    picked: set[int],
    names: Mapping[int, str],
    children: Mapping[int, int],
) -> str:
    """A reason true of every item of ``for_you`` (``item_categories``: each item's)."""
    in_picked = [bool(picked.intersection(cats)) for cats in item_categories]
    if cold:
        if picked and in_picked and all(in_picked):
            return "Popular in topics you picked."
        if any(in_picked):
            return "From topics you picked, and popular on INBO."
        return "Popular on INBO right now."
    topics = set(names) | {c for c, p in children.items() if p in names}
    if names and item_categories and all(topics.intersection(c) for c in item_categories):
        return "Picked for you from " + ", ".join(sorted(names.values())) + "."
    return "Picked for you."


def ordered(sections: list[Section], order: Iterable[str]) -> list[Section]:
    """``sections`` with those named in ``order`` first, in that order, then the rest in
    their usual order (a variant's or a bandit's section order)."""
    rank_of = {key: i for i, key in enumerate(order)}
    return sorted(
        sections, key=lambda s: (rank_of.get(s.key, len(rank_of)), SECTION_ORDER.index(s.key))
    )


# The exploration slot's defaults (a variant's ``explore`` config overrides them).
EXPLORE_DEFAULTS = {"position": 2, "pool": 10, "temperature": 1.0, "max_age_hours": 48.0}


def explore_slot(
    ranked: list[Scored],
    params: Mapping[str, Any],
    *,
    now: datetime,
    candidates: Iterable[Candidate],
    exclude: set[int] | frozenset[int] = frozenset(),
    rng: random.Random | None = None,
) -> tuple[list[Scored], Decision | None]:
    """Put one under-explored fresh item at ``position`` of the ranking, drawn at random.

    The pool is the ``pool`` best-ranked items published within ``max_age_hours`` that are
    not already above the slot, fewest impressions first among equals; one is drawn with
    probability softmax(score / temperature). The draw's propensity and the whole pool with
    each candidate's signals are returned as a :class:`Decision`: the served log then
    holds what off-policy evaluation needs to score any other ranking of that pool.
    """
    p = {**EXPLORE_DEFAULTS, **params}
    position = int(p["position"])
    if len(ranked) <= position:
        return ranked, None
    published = {c.item_id: c.published_at for c in candidates}
    horizon = now - timedelta(hours=float(p["max_age_hours"]))
    pool = [
        s
        for s in ranked[position:]
        if s.item_id not in exclude
        and published.get(s.item_id, now) >= horizon
        and s.signals.get("impressions_log", 0.0) <= UNDER_EXPLORED_LOG_IMPRESSIONS
    ][: int(p["pool"])]
    if len(pool) < 2:
        return ranked, None
    temperature = max(float(p["temperature"]), 1e-3)
    top = max(s.score for s in pool)
    weights = [math.exp((s.score - top) / temperature) for s in pool]
    total = sum(weights)
    draw = (rng or random).random() * total
    index = 0
    for index, w in enumerate(weights):  # noqa: B007 (index is the draw)
        draw -= w
        if draw < 0:
            break
    chosen = pool[index]
    rest = [s for s in ranked if s.item_id != chosen.item_id]
    reordered = [*rest[:position], chosen, *rest[position:]]
    decision = Decision(
        kind="explore",
        key="for_you",
        arm=str(chosen.item_id),
        propensity=weights[index] / total,
        context={"position": position, "temperature": temperature},
        candidates=tuple(
            {
                "item_id": s.item_id,
                "score": round(s.score, 4),
                "propensity": round(w / total, 6),
                "signals": dict(s.signals),
            }
            for s, w in zip(pool, weights, strict=True)
        ),
    )
    return reordered, decision


# Items shown fewer than about 20 times are under-explored (ln(1 + 20) ~ 3.04).
UNDER_EXPLORED_LOG_IMPRESSIONS = math.log1p(20)


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
