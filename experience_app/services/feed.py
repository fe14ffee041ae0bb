"""Building and serving the personalized home feed.

A feed is built once (candidates from several sources, scored together by
:func:`experience_app.ranking.rank`, split into disjoint sections), cached per user in
Redis, and served page by page. The user's own feedback deletes the cached feed, so the
next call is built again. Without Redis the feed is built from PostgreSQL alone and says
``degraded``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone

from experience_app import selectors
from experience_app.models import ServedFeed
from experience_app.ranking import Candidate, Scored, UserContext, rank
from features_app import public as features
from inbo import keys
from inbo import redis as inbo_redis
from inbo.errors import InvalidCursor, NotFound
from reading_app import public as reading

logger = logging.getLogger(__name__)

SECTION_ORDER = ("continue_reading", "for_you", "because_you_read", "trending", "fresh")
# Candidate pools: enough to fill every section several pages deep, small enough that a
# cold build (facets, signals, ranking) stays well under 100 ms.
TRENDING_POOL = 120
RECENT_POOL = 200
RELATED_POOL = 40
CO_READ_WINDOW = timedelta(days=7)
MAX_CURSOR_LENGTH = 256


@dataclass
class Section:
    key: str
    title: str
    reason: str
    ranked: list[Scored]


def _serialize_scored(s: Scored) -> dict[str, Any]:
    return {"item_id": s.item_id, "score": round(s.score, 4), "signals": s.signals}


# --- building -------------------------------------------------------------------------


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
            return features.item_signals(item_ids, now=now, with_counts=False), False
        except redis.RedisError as exc:
            logger.warning("experience.signals_degraded error=%s", exc)
    return features.item_signals_from_log(item_ids, now=now), True


def build_feed(user_id: int, *, now: datetime, degraded: bool = False) -> dict[str, Any]:
    """Rank every section for ``user_id`` at ``now``; a JSON-ready dict (what is cached)."""
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

    pool = list(dict.fromkeys([*focused, *recent, *fresh_ids, *related, *trending_ids]))
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
    )
    by_id = {s.item_id: s for s in ranked}
    trending_rank = {item: i for i, item in enumerate(trending_ids)}

    # Name what the user showed most taste for, then what they picked at onboarding.
    named = list(dict.fromkeys([*taste, *sorted(interests)]))[:3]
    names = reading.category_names(named) if named else {}
    anchor_title = ""
    if anchor is not None:
        card = reading.item_cards([anchor]).get(anchor)
        anchor_title = card["title"] if card else ""
    sections = [
        Section(
            "continue_reading",
            "Continue reading",
            "Pick up where you left off.",
            [
                Scored(item, round(progress, 4), {"progress": round(progress, 4)})
                for item, progress in continuing
                if item not in excluded
            ],
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
            ranked,
        ),
        Section(
            "because_you_read",
            "Because you read",
            f"Because you read “{anchor_title}”." if anchor_title else "",
            [by_id[i] for i in dict.fromkeys(related) if i in by_id] if anchor_title else [],
        ),
        Section(
            "trending",
            "Trending",
            "Read most in the last hours.",
            sorted(
                (by_id[i] for i in trending_ids if i in by_id),
                key=lambda s: trending_rank[s.item_id],
            ),
        ),
        Section(
            "fresh",
            "Fresh from your subscriptions",
            "The latest from newsletters you follow.",
            [by_id[i] for i in fresh_ids if i in by_id],
        ),
    ]
    _make_disjoint(sections)
    return {
        "version": uuid.uuid4().hex,
        "generated_at": now.isoformat(),
        "degraded": degraded,
        "cold_start": cold,
        "sections": [
            {
                "key": s.key,
                "title": s.title,
                "reason": s.reason,
                "items": [_serialize_scored(x) for x in s.ranked],
            }
            for s in sections
            if s.ranked
        ],
    }


# Which section keeps an item that several could show. ``for_you`` ranks the whole pool and
# always has more to show: were it before ``fresh`` and ``trending``, its first page would
# take their newest and most trending items. ``because_you_read`` draws on the categories
# the user just engaged with, exactly what ``for_you`` now favours: it shows the next ones.
CLAIM_ORDER = ("continue_reading", "fresh", "trending", "for_you", "because_you_read")


def _make_disjoint(sections: list[Section]) -> None:
    """No item twice on one page (nor on later ones): first pages are filled in
    ``CLAIM_ORDER``, then the rest."""
    page = settings.EXPERIENCE_SECTION_PAGE_SIZE
    limit = settings.EXPERIENCE_SECTION_MAX_ITEMS
    taken: set[int] = set()
    firsts: dict[str, list[Scored]] = {}
    claiming = sorted(sections, key=lambda s: CLAIM_ORDER.index(s.key))
    for s in claiming:
        firsts[s.key] = []
        for x in s.ranked:
            if len(firsts[s.key]) >= page:
                break
            if x.item_id not in taken:
                firsts[s.key].append(x)
                taken.add(x.item_id)
    for s in claiming:
        rest = [x for x in s.ranked if x.item_id not in taken]
        rest = rest[: max(0, limit - len(firsts[s.key]))]
        taken.update(x.item_id for x in rest)
        s.ranked = firsts[s.key] + rest


# --- serving --------------------------------------------------------------------------


def _encode_cursor(version: str, key: str, offset: int) -> str:
    raw = json.dumps({"v": version, "k": key, "o": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str, int]:
    """(version, section key, offset) of a section cursor; InvalidCursor if it is not one."""
    # Ours are under 100 characters; a long one is tampered with (and could nest JSON deep
    # enough to exhaust the parser's recursion).
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise InvalidCursor()
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        version, key, offset = str(data["v"]), str(data["k"]), int(data["o"])
    except (ValueError, KeyError, TypeError, OverflowError, binascii.Error):
        # OverflowError: an offset of 1e400 parses as infinity, which int() refuses.
        raise InvalidCursor() from None
    if offset < 0 or offset > 10_000:
        raise InvalidCursor()
    return version, key, offset


def _page(
    feed: dict[str, Any], section: dict[str, Any], offset: int, cards: dict[int, dict]
) -> dict[str, Any]:
    size = settings.EXPERIENCE_SECTION_PAGE_SIZE
    chosen = section["items"][offset : offset + size]
    items = []
    for position, entry in enumerate(chosen, start=offset):
        card = cards.get(entry["item_id"])
        if card is None:
            continue  # withdrawn or dismissed since the feed was built
        items.append(
            {
                "position": position,
                "item": card,
                "score": entry["score"],
                "explanation": entry["signals"],
            }
        )
    more = offset + size < len(section["items"])
    return {
        "key": section["key"],
        "title": section["title"],
        "reason": section["reason"],
        "items": items,
        "next_cursor": _encode_cursor(feed["version"], section["key"], offset + size)
        if more
        else None,
    }


def _never_again(user_id: int) -> set[int]:
    """Dismissed, hidden, read and completed items: filtered out even from a cached feed."""
    return selectors.never_again_item_ids(user_id=user_id) | reading.completed_item_ids(
        user_id=user_id
    )


def _cards_without(ids: list[int], excluded: set[int]) -> dict[int, dict]:
    return {k: v for k, v in reading.item_cards([i for i in ids if i not in excluded]).items()}


def _served_items(pages: list[dict]) -> list[dict[str, Any]]:
    """What the served log keeps of each shown item: where, its score and its signals."""
    return [
        {
            "item_id": entry["item"]["id"],
            "section": page["key"],
            "position": entry["position"],
            "score": entry["score"],
            "signals": entry["explanation"],
        }
        for page in pages
        for entry in page["items"]
    ]


def _served_record(
    request_id: uuid.UUID, user_id: int, now: datetime, degraded: bool, items_json: str
) -> str:
    # Spliced, not re-encoded: the items part is encoded once per feed build.
    return (
        f'{{"request_id":"{request_id}","user_id":{int(user_id)},'
        f'"served_at":{json.dumps(now.isoformat())},"degraded":{json.dumps(degraded)},'
        f'"items":{items_json}}}'
    )


def _record_served(
    pipe_or_none,
    request_id: uuid.UUID,
    user_id: int,
    now: datetime,
    pages: list[dict],
    degraded: bool,
) -> None:
    items = _served_items(pages)
    if pipe_or_none is not None:
        pipe_or_none.rpush(
            keys.served_buffer(),
            _served_record(
                request_id, user_id, now, degraded, json.dumps(items, separators=(",", ":"))
            ),
        )
    else:
        ServedFeed.objects.create(
            request_id=request_id, user_id=user_id, served_at=now, degraded=degraded, items=items
        )


def _body(
    request_id: uuid.UUID, meta: dict[str, Any], degraded: bool, cached: bool, pages_json: str
) -> bytes:
    head = json.dumps(
        {
            "request_id": str(request_id),
            "generated_at": meta["generated_at"],
            "degraded": degraded,
            "cold_start": meta["cold_start"],
            "cached": cached,
        },
        separators=(",", ":"),
    )
    return f'{head[:-1]},"sections":{pages_json}}}'.encode()


def home_json(user_id: int, *, now: datetime | None = None) -> bytes:
    """The home response body: the first page of every section, ready to send.

    A cache hit costs one Redis round trip to read (metadata, the first pages as encoded
    JSON, their served-log items, the feedback generation), two small queries (items that
    must never come back) and one pipelined write of the served log and hit counter; the
    cached JSON is sent as it is unless one of its items must be taken out.
    """
    now = now or timezone.now()
    request_id = uuid.uuid4()
    client = inbo_redis.state()
    redis_ok = True
    meta: dict[str, Any] | None = None
    pages_json = served_json = ""
    generation = "0"
    try:
        meta_raw, pages_raw, served_raw, current = client.mget(
            keys.feed(user_id),
            keys.feed_pages(user_id),
            keys.feed_served(user_id),
            keys.feed_generation(user_id),
        )
        generation = str(current or "0")
        if meta_raw and pages_raw and served_raw:
            meta = json.loads(meta_raw)
            pages_json, served_json = str(pages_raw), str(served_raw)
            if meta is not None and meta.get("generation") != generation:
                meta = None  # built before the user's latest feedback
    except redis.RedisError as exc:
        redis_ok = False
        logger.warning("experience.cache_unavailable user=%s error=%s", user_id, exc)

    if meta is not None:
        # Checked on every hit: feedback given while Redis was unreachable could not mark
        # the cached feed stale, and a dismissed, read or completed item never comes back.
        gone = _never_again(user_id) & set(meta["ids"])
        if gone:
            pages = json.loads(pages_json)
            for page in pages:
                page["items"] = [e for e in page["items"] if e["item"]["id"] not in gone]
            pages_json = json.dumps(pages, separators=(",", ":"))
            served_json = json.dumps(_served_items(pages), separators=(",", ":"))
        degraded = bool(meta["degraded"])
        try:
            pipe = client.pipeline(transaction=False)
            pipe.hincrby(keys.feed_cache_stats(), "hit", 1)
            pipe.rpush(
                keys.served_buffer(),
                _served_record(request_id, user_id, now, degraded, served_json),
            )
            pipe.execute()
        except redis.RedisError:
            ServedFeed.objects.create(
                request_id=request_id,
                user_id=user_id,
                served_at=now,
                degraded=degraded,
                items=json.loads(served_json),
            )
        return _body(request_id, meta, degraded, True, pages_json)

    feed = build_feed(user_id, now=now, degraded=not redis_ok)
    size = settings.EXPERIENCE_SECTION_PAGE_SIZE
    first_ids = [e["item_id"] for s in feed["sections"] for e in s["items"][:size]]
    cards = reading.item_cards(first_ids)
    pages = [_page(feed, s, 0, cards) for s in feed["sections"]]
    pages_json = json.dumps(pages, separators=(",", ":"))
    served_json = json.dumps(_served_items(pages), separators=(",", ":"))
    meta = {
        "generation": generation,
        "version": feed["version"],
        "generated_at": feed["generated_at"],
        "degraded": feed["degraded"],
        "cold_start": feed["cold_start"],
        "ids": [e["item"]["id"] for page in pages for e in page["items"]],
    }
    degraded = bool(feed["degraded"]) or not redis_ok
    if redis_ok and not feed["degraded"]:
        try:
            ttl = settings.EXPERIENCE_FEED_CACHE_SECONDS
            pipe = client.pipeline(transaction=False)
            pipe.set(keys.feed(user_id), json.dumps(meta, separators=(",", ":")), ex=ttl)
            pipe.set(keys.feed_pages(user_id), pages_json, ex=ttl)
            pipe.set(keys.feed_served(user_id), served_json, ex=ttl)
            pipe.set(
                keys.feed_snapshot(user_id, feed["version"]),
                json.dumps(feed, separators=(",", ":")),
                ex=keys.FEED_SNAPSHOT_TTL_SECONDS,
            )
            pipe.hincrby(keys.feed_cache_stats(), "miss", 1)
            pipe.rpush(
                keys.served_buffer(),
                _served_record(request_id, user_id, now, degraded, served_json),
            )
            pipe.execute()
            return _body(request_id, meta, degraded, False, pages_json)
        except redis.RedisError as exc:
            degraded = True
            logger.warning("experience.cache_write_failed user=%s error=%s", user_id, exc)
    ServedFeed.objects.create(
        request_id=request_id,
        user_id=user_id,
        served_at=now,
        degraded=degraded,
        items=json.loads(served_json),
    )
    return _body(request_id, meta, degraded, False, pages_json)


def home(user_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    """The home response as a dict (see :func:`home_json`)."""
    body: dict[str, Any] = json.loads(home_json(user_id, now=now))
    return body


def _current_version(client: Any, user_id: int) -> str | None:
    """The version of the user's cached feed, unless feedback came after it was built."""
    meta_raw, current = client.mget(keys.feed(user_id), keys.feed_generation(user_id))
    meta = json.loads(meta_raw) if meta_raw else None
    if meta is None or meta.get("generation") != str(current or "0"):
        return None
    return str(meta["version"])


def section_page(user_id: int, key: str, cursor: str, *, now: datetime | None = None) -> dict:
    """A further page of one section, from the feed version the cursor came from; an empty
    cursor is the first page, from the user's current feed."""
    if key not in SECTION_ORDER:
        raise NotFound("No such section.", details={"section": key})
    version: str | None = None
    offset = 0
    if cursor:
        version, cursor_key, offset = decode_cursor(cursor)
        if cursor_key != key:
            raise InvalidCursor(details={"cursor": ["This cursor belongs to another section."]})
    now = now or timezone.now()
    request_id = uuid.uuid4()
    feed = None
    redis_ok = True
    client = inbo_redis.state()
    try:
        if version is None:
            version = _current_version(client, user_id)
        raw = client.get(keys.feed_snapshot(user_id, version)) if version else None
        feed = json.loads(raw) if raw else None
    except redis.RedisError:
        redis_ok = False
    if feed is None:
        # The snapshot expired (or Redis is away): continue on a freshly built feed.
        feed = build_feed(user_id, now=now, degraded=not redis_ok)
    section = next((s for s in feed["sections"] if s["key"] == key), None)
    page: dict[str, Any]
    if section is None:
        page = {"key": key, "title": "", "reason": "", "items": [], "next_cursor": None}
    else:
        size = settings.EXPERIENCE_SECTION_PAGE_SIZE
        ids = [e["item_id"] for e in section["items"][offset : offset + size]]
        cards = _cards_without(ids, _never_again(user_id))
        page = _page(feed, section, offset, cards)
    degraded = bool(feed["degraded"]) or not redis_ok
    try:
        if not redis_ok:
            raise redis.RedisError("unavailable")
        pipe = client.pipeline(transaction=False)
        _record_served(pipe, request_id, user_id, now, [page], degraded)
        pipe.execute()
    except redis.RedisError:
        _record_served(None, request_id, user_id, now, [page], degraded)
    return {"request_id": str(request_id), "degraded": degraded, **page}


def invalidate(user_id: int) -> bool:
    """Forget the user's cached feed (their feedback changes it). False if Redis is away.

    Bumping the generation also defeats a build that started before the feedback and
    writes its (stale) feed after it.
    """
    try:
        pipe = inbo_redis.state().pipeline(transaction=False)
        pipe.incr(keys.feed_generation(user_id))
        pipe.expire(keys.feed_generation(user_id), keys.FEED_GENERATION_TTL_SECONDS)
        pipe.delete(keys.feed(user_id), keys.feed_pages(user_id), keys.feed_served(user_id))
        pipe.execute()
    except redis.RedisError:
        return False
    return True
