"""The feed cache: a built feed kept per user in Redis, served page by page.

The home response's first pages are cached as encoded JSON beside their served-log items
and the feed's metadata; the whole feed is kept as a snapshot under its version, which
section cursors name, so further pages come from the feed the client saw. The user's own
feedback bumps a generation (:func:`invalidate`), so the next call builds again. Without
Redis the feed is built from PostgreSQL alone and says ``degraded``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone

from experience_app import selectors, treatments
from experience_app.services import rerank
from experience_app.services.feed import opens, served_log
from experience_app.services.feed.build import (
    MODEL_ORDERED,
    SECTION_ORDER,
    Entry,
    Feed,
    Section,
    build_feed,
    explained,
)
from experience_app.time_place import Place
from features_app import public as features
from inbo import keys
from inbo import redis as inbo_redis
from inbo.errors import InvalidCursor, NotFound
from reading_app import public as reading
from rules_app import public as rules

logger = logging.getLogger(__name__)

MAX_CURSOR_LENGTH = 256


# --- cursors --------------------------------------------------------------------------


def encode_cursor(version: str, key: str, offset: int) -> str:
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


# --- pages ----------------------------------------------------------------------------


def _shown(section: Section, offset: int, cards: dict[int, dict]) -> list[tuple[int, Entry]]:
    """The page's entries that still have a card, with their positions in the section."""
    size = settings.EXPERIENCE_SECTION_PAGE_SIZE
    chosen = section.entries[offset : offset + size]
    # An entry without a card was withdrawn or dismissed since the feed was built.
    return [(p, e) for p, e in enumerate(chosen, start=offset) if e.item_id in cards]


def page(
    version: str, section: Section, offset: int, shown: Sequence[tuple[int, Entry]], cards: dict
) -> dict[str, Any]:
    """A page as the API sends it. Its ``explanation`` is the entry's ``signals``: the one
    place the served name differs from the feed's and the served log's."""
    size = settings.EXPERIENCE_SECTION_PAGE_SIZE
    more = offset + size < len(section.entries)
    return {
        "key": section.key,
        "title": section.title,
        "reason": section.reason,
        "items": [
            {
                "position": position,
                "item": cards[entry.item_id],
                "score": entry.score,
                # Always labelled: a campaign's item says so (business rules, rules_app).
                "sponsored": bool(entry.signals.get("sponsored")),
                "explanation": entry.signals,
                "top_features": [
                    {"feature": name, "contribution": c} for name, c in entry.top_features
                ],
            }
            for position, entry in shown
        ],
        "next_cursor": encode_cursor(version, section.key, offset + size) if more else None,
    }


def _never_again(user_id: int, item_ids: Collection[int]) -> set[int]:
    """Those of ``item_ids`` dismissed, hidden, read or completed: filtered out even from a
    cached feed."""
    return selectors.never_again_among(user_id=user_id, item_ids=item_ids)


def _body(
    request_id: uuid.UUID, meta: dict[str, Any], degraded: bool, cached: bool, pages_json: str
) -> bytes:
    head = json.dumps(
        {
            "request_id": str(request_id),
            "generated_at": meta["generated_at"],
            "degraded": degraded,
            "cold_start": meta["cold_start"],
            "ranker": meta.get("ranker", "linear"),
            "cached": cached,
        },
        separators=(",", ":"),
    )
    experiments = meta.get("experiments_json") or "{}"  # encoded once, at build time
    return f'{head[:-1]},"experiments":{experiments},"sections":{pages_json}}}'.encode()


# --- home -----------------------------------------------------------------------------


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


def _experiments_json(meta: dict[str, Any]) -> tuple[str, str]:
    """The variants and the build's decisions as the served log keeps them, encoded at
    build time (a cache hit splices them, it does not encode them again)."""
    return meta.get("experiments_json") or "{}", meta.get("decisions_json") or "[]"


def _compact(decisions: Any) -> str:
    """The decisions as every served record of the feed names them: what was chosen and
    its propensity. The whole decision (the exploration pool and its signals) is logged once,
    by the provider (experiments_app's decision log)."""
    return json.dumps(
        [
            {"kind": d.kind, "key": d.key, "arm": d.arm, "propensity": round(d.propensity, 6)}
            for d in decisions
        ],
        separators=(",", ":"),
    )


def _feed_context(
    now: datetime, platform: str | None, segment: features.UserSegment | None
) -> treatments.FeedContext:
    engagement = segment.engagement if segment is not None else None
    return treatments.FeedContext(now=now, platform=platform, segment=engagement)


def _segment_treatment(
    user_id: int,
    now: datetime,
    platform: str | None,
    raw: str | bytes | None,
    copies_complete: bool,
) -> tuple[features.UserSegment | None, treatments.Treatment]:
    """The user's segment (``raw``: as read with the cache; PostgreSQL when Redis lost it or
    is away) and the treatment of their experiments, which may target it."""
    segment = features.user_segment_decode(user_id, raw, copies_complete=copies_complete)
    return segment, treatments.resolve(user_id, _feed_context(now, platform, segment))


def home_json(
    user_id: int,
    *,
    now: datetime | None = None,
    platform: str | None = None,
    place: Place | None = None,
) -> bytes:
    """The home response body: the first page of every section, ready to send.

    A cache hit costs one Redis round trip to read (metadata, the first pages as encoded
    JSON, their served-log items, the feedback generation, the user's segment), one small
    query (those of the feed's items that must never come back; a second, by primary key,
    only before the first segmentation run or when Redis lost the segments) and one
    pipelined write of the served log and hit counter; the cached JSON is sent as it is
    unless one of its items must be taken out.

    The user's running experiments (``treatments.resolve``, in-process, no query on the
    common path) decide how the feed is built; a cached feed built under another treatment
    is built again. Exposures and random choices are logged when a treated feed is built.
    """
    started = time.perf_counter()
    now = now or timezone.now()
    request_id = uuid.uuid4()
    client = inbo_redis.state()
    redis_ok = True
    meta: dict[str, Any] | None = None
    pages_json = served_json = ""
    generation = "0"
    prebuilt: Any = None
    treatment: treatments.Treatment | None = None
    segment: features.UserSegment | None = None
    try:
        meta_raw, pages_raw, served_raw, current, segment_raw, written, prebuilt = client.mget(
            keys.feed(user_id),
            keys.feed_pages(user_id),
            keys.feed_served(user_id),
            keys.feed_generation(user_id),
            keys.user_segment(user_id),
            keys.segments_written(),
            keys.feed_prebuilt(user_id),
        )
        # The segment comes with the cache read: the user's experiments may target it.
        segment, treatment = _segment_treatment(
            user_id, now, platform, segment_raw, written is not None
        )
        generation = str(current or "0")
        if meta_raw and pages_raw and served_raw:
            meta = json.loads(meta_raw)
            pages_json, served_json = str(pages_raw), str(served_raw)
            if meta is not None and meta.get("generation") != generation:
                meta = None  # built before the user's latest feedback
            elif meta is not None and meta.get("treatment", "") != treatment.signature():
                meta = None  # built before an experiment started or stopped
            elif meta is not None and meta.get("place", "") != _place_tag(place):
                meta = None  # built for a reader the proxy placed elsewhere
            elif meta is not None and meta.get("rules", 0) != _rules_version(now):
                meta = None  # built before a business rule changed (a block, a campaign)
    except redis.RedisError as exc:
        redis_ok = False
        logger.warning("experience.cache_unavailable user=%s error=%s", user_id, exc)
    if treatment is None:  # Redis is away: the segment from PostgreSQL
        segment, treatment = _segment_treatment(user_id, now, platform, None, False)

    if meta is not None:
        # Checked on every hit: feedback given while Redis was unreachable could not mark
        # the cached feed stale, and a dismissed, read or completed item never comes back.
        gone = _never_again(user_id, meta["ids"])
        if gone:
            pages = json.loads(pages_json)
            for p in pages:
                p["items"] = [e for e in p["items"] if e["item"]["id"] not in gone]
            pages_json = json.dumps(pages, separators=(",", ":"))
            served_json = served_log.without(served_json, gone)
        degraded = bool(meta["degraded"])
        experiments_json, decisions_json = _experiments_json(meta)
        served = served_log.Served(
            request_id,
            user_id,
            now,
            degraded,
            served_json,
            meta.get("ranker", "linear"),
            experiments_json,
            decisions_json,
            _elapsed_ms(started),
        )
        try:
            pipe = client.pipeline(transaction=False)
            pipe.hincrby(keys.feed_cache_stats(), "hit", 1)
            if prebuilt is not None and prebuilt == meta["version"]:
                # The first request a prebuild run saved from building: counted once, and
                # from now on the feed lives as long as one a request built.
                pipe.hincrby(keys.feed_cache_stats(), "prebuilt", 1)
                pipe.delete(keys.feed_prebuilt(user_id))
                ttl = settings.EXPERIENCE_FEED_CACHE_SECONDS
                for key in (
                    keys.feed(user_id),
                    keys.feed_pages(user_id),
                    keys.feed_served(user_id),
                ):
                    pipe.expire(key, ttl)
            opens.record_open(pipe, user_id, now=now, place=_place_tag(place), platform=platform)
            served_log.push(pipe, served)
            pipe.execute()
        except redis.RedisError:
            served_log.store(served)
        return _body(request_id, meta, degraded, True, pages_json)

    feed, meta, pages_json, served_json = _build(
        user_id,
        now=now,
        redis_ok=redis_ok,
        treatment=treatment,
        place=place,
        segment=segment,
        generation=generation,
        request_id=request_id,
    )
    degraded = feed.degraded or not redis_ok
    experiments_json, decisions_json = _experiments_json(meta)

    def served_record(degraded: bool) -> served_log.Served:
        return served_log.Served(
            request_id,
            user_id,
            now,
            degraded,
            served_json,
            feed.ranker,
            experiments_json,
            decisions_json,
            _elapsed_ms(started),
        )

    served = served_record(degraded)
    if redis_ok and not feed.degraded:
        try:
            pipe = client.pipeline(transaction=False)
            _store(pipe, user_id, feed, meta, pages_json, served_json)
            pipe.hincrby(keys.feed_cache_stats(), "miss", 1)
            opens.record_open(pipe, user_id, now=now, place=_place_tag(place), platform=platform)
            served_log.push(pipe, served)
            pipe.execute()
            return _body(request_id, meta, degraded, False, pages_json)
        except redis.RedisError as exc:
            degraded = True
            logger.warning("experience.cache_write_failed user=%s error=%s", user_id, exc)
            served = served_record(True)
    served_log.store(served)
    return _body(request_id, meta, degraded, False, pages_json)


def _build_served(
    user_id: int,
    *,
    now: datetime,
    redis_ok: bool,
    treatment: treatments.Treatment,
    place: Place | None,
    segment: features.UserSegment | None,
    request_id: uuid.UUID,
) -> Feed:
    """A freshly built feed, its treatment's exposures and choices logged before it is
    cached or served (a database error there fails the request instead)."""
    feed = build_feed(
        user_id,
        now=now,
        degraded=not redis_ok,
        treatment=treatment,
        place=place,
        segment=segment,
    )
    treatments.served(user_id, treatment, feed.decisions, request_id=str(request_id), now=now)
    return feed


def _build(
    user_id: int,
    *,
    now: datetime,
    redis_ok: bool,
    treatment: treatments.Treatment,
    place: Place | None,
    segment: features.UserSegment | None,
    generation: str,
    request_id: uuid.UUID,
) -> tuple[Feed, dict[str, Any], str, str]:
    """Build the feed and cut its first pages: (feed, cache metadata, pages JSON, served-log
    items JSON). A request's cache miss and a prebuild run both build here."""
    feed = _build_served(
        user_id,
        now=now,
        redis_ok=redis_ok,
        treatment=treatment,
        place=place,
        segment=segment,
        request_id=request_id,
    )
    size = settings.EXPERIENCE_SECTION_PAGE_SIZE
    cards = reading.item_cards([e.item_id for s in feed.sections for e in s.entries[:size]])
    pages, items = [], []
    for section in feed.sections:
        shown = _shown(section, 0, cards)
        pages.append(page(feed.version, section, 0, shown, cards))
        items += served_log.served_items(section.key, shown)
    pages_json = json.dumps(pages, separators=(",", ":"))
    served_json = json.dumps(items, separators=(",", ":"))
    meta = {
        "generation": generation,
        "version": feed.version,
        "generated_at": feed.generated_at,
        "degraded": feed.degraded,
        "cold_start": feed.cold_start,
        "ranker": feed.ranker,
        "experiments_json": json.dumps(dict(feed.experiments), separators=(",", ":")),
        "treatment": feed.treatment,
        "decisions_json": _compact(feed.decisions),
        "ids": [i["item_id"] for i in items],
        "place": _place_tag(place),
        "rules": _rules_version(now),
    }
    return feed, meta, pages_json, served_json


def _store(
    pipe: Any,
    user_id: int,
    feed: Feed,
    meta: dict[str, Any],
    pages_json: str,
    served_json: str,
    ttl: int | None = None,
) -> None:
    """Queue the writes that cache a built feed (its snapshot outlives it)."""
    ttl = ttl or settings.EXPERIENCE_FEED_CACHE_SECONDS
    pipe.set(keys.feed(user_id), json.dumps(meta, separators=(",", ":")), ex=ttl)
    pipe.set(keys.feed_pages(user_id), pages_json, ex=ttl)
    pipe.set(keys.feed_served(user_id), served_json, ex=ttl)
    pipe.set(
        keys.feed_snapshot(user_id, feed.version),
        json.dumps(feed.to_json(), separators=(",", ":")),
        ex=max(ttl, keys.FEED_SNAPSHOT_TTL_SECONDS),
    )


def prebuild(
    user_id: int,
    *,
    now: datetime | None = None,
    platform: str | None = None,
    place: Place | None = None,
    ttl: int,
) -> bool | None:
    """Build and cache the user's feed before they ask for it (predictive caching), exactly
    as their request's cache miss would: the same treatment, place and platform, the same
    generation check (feedback given after this read makes the feed stale). It is kept
    ``ttl`` seconds and marked pre-built, so that the hit it saves is counted as such. False
    when it could not be cached (Redis away, or the build degraded); None, and nothing built,
    for a reader in a running experiment: a build logs the exposure, and most pre-built feeds
    are never opened, so a pre-built treated feed would count readers as exposed who never
    saw it (every variant's readers are left out alike)."""
    now = now or timezone.now()
    client = inbo_redis.state()
    current, segment_raw, written = client.mget(
        keys.feed_generation(user_id), keys.user_segment(user_id), keys.segments_written()
    )
    segment, treatment = _segment_treatment(
        user_id, now, platform, segment_raw, written is not None
    )
    if not treatment.empty:
        return None
    feed, meta, pages_json, served_json = _build(
        user_id,
        now=now,
        redis_ok=True,
        treatment=treatment,
        place=place,
        segment=segment,
        generation=str(current or "0"),
        request_id=uuid.uuid4(),
    )
    if feed.degraded:
        return False
    pipe = client.pipeline(transaction=False)
    _store(pipe, user_id, feed, meta, pages_json, served_json, ttl)
    pipe.set(keys.feed_prebuilt(user_id), feed.version, ex=ttl)
    pipe.execute()
    return True


def cached_feeds(user_ids: Sequence[int], *, now: datetime) -> set[int]:
    """Those of ``user_ids`` whose cached feed a home request would serve as it is (built
    under their current feedback generation and the current business rules)."""
    if not user_ids:
        return set()
    client = inbo_redis.state()
    flat = client.mget([k for u in user_ids for k in (keys.feed(u), keys.feed_generation(u))])
    rules_version = _rules_version(now)
    fresh = set()
    for i, user_id in enumerate(user_ids):
        meta_raw, current = flat[2 * i], flat[2 * i + 1]
        if not meta_raw:
            continue
        meta = json.loads(meta_raw)
        if meta.get("generation") == str(current or "0") and meta.get("rules", 0) == rules_version:
            fresh.add(user_id)
    return fresh


def _rules_version(now: datetime) -> int:
    """The business rules' version the feed is built under (0: rules switched off)."""
    if "rules" in settings.EXPERIENCE_PERSONALIZATION_OFF:
        return 0
    return rules.version(now)


def _place_tag(place: Place | None) -> str:
    return f"{place.country}-{place.region}" if place is not None else ""


def home(user_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    """The home response as a dict (see :func:`home_json`)."""
    body: dict[str, Any] = json.loads(home_json(user_id, now=now))
    return body


# --- further pages --------------------------------------------------------------------


def _current_version(client: Any, user_id: int) -> str | None:
    """The version of the user's cached feed, unless feedback came after it was built."""
    meta_raw, current = client.mget(keys.feed(user_id), keys.feed_generation(user_id))
    meta = json.loads(meta_raw) if meta_raw else None
    if meta is None or meta.get("generation") != str(current or "0"):
        return None
    return str(meta["version"])


def section_page(
    user_id: int,
    key: str,
    cursor: str,
    *,
    now: datetime | None = None,
    place: Place | None = None,
) -> dict:
    """A further page of one section, from the feed version the cursor came from; an empty
    cursor is the first page, from the user's current feed (``place``: as for home, when the
    feed must be built again)."""
    if key not in SECTION_ORDER:
        raise NotFound("No such section.", details={"section": key})
    version: str | None = None
    offset = 0
    if cursor:
        version, cursor_key, offset = decode_cursor(cursor)
        if cursor_key != key:
            raise InvalidCursor(details={"cursor": ["This cursor belongs to another section."]})
    started = time.perf_counter()
    now = now or timezone.now()
    request_id = uuid.uuid4()
    feed: Feed | None = None
    redis_ok = True
    client = inbo_redis.state()
    try:
        if version is None:
            version = _current_version(client, user_id)
        raw = client.get(keys.feed_snapshot(user_id, version)) if version else None
        feed = Feed.from_json(json.loads(raw)) if raw else None
    except redis.RedisError:
        redis_ok = False
    if feed is None:
        # The snapshot expired (or Redis is away): continue on a freshly built feed, under
        # the user's treatment (its exposures and choices are logged as on home).
        segment = features.user_segment(user_id)
        treatment = treatments.resolve(user_id, _feed_context(now, None, segment))
        feed = _build_served(
            user_id,
            now=now,
            redis_ok=redis_ok,
            treatment=treatment,
            place=place,
            segment=segment,
            request_id=request_id,
        )
    section = feed.section(key)
    body: dict[str, Any]
    items: list[dict[str, Any]] = []
    if section is None:
        body = {"key": key, "title": "", "reason": "", "items": [], "next_cursor": None}
    else:
        size = settings.EXPERIENCE_SECTION_PAGE_SIZE
        ids = [e.item_id for e in section.entries[offset : offset + size]]
        excluded = _never_again(user_id, ids)
        cards = reading.item_cards([i for i in ids if i not in excluded])
        model = rerank.current()
        if (model is None or model.label != feed.ranker) and feed.ranker != "linear":
            model = rerank.pinned(feed.ranker)  # a variant's pinned version
        if model is not None and model.label == feed.ranker and key in MODEL_ORDERED:
            # A later page of a reranked section, explained by the model that ranked it.
            section = Section(
                section.key,
                section.title,
                section.reason,
                explained(section.entries, model, upto=offset + size, start=offset),
            )
        shown = _shown(section, offset, cards)
        body = page(feed.version, section, offset, shown, cards)
        items = served_log.served_items(section.key, shown)
    degraded = feed.degraded or not redis_ok
    served = served_log.Served(
        request_id,
        user_id,
        now,
        degraded,
        json.dumps(items, separators=(",", ":")),
        feed.ranker,
        json.dumps(dict(feed.experiments), separators=(",", ":")),
        "[]",  # a further page makes no new choice: the build's are logged with its home
        _elapsed_ms(started),
    )
    try:
        if not redis_ok:
            raise redis.RedisError("unavailable")
        pipe = client.pipeline(transaction=False)
        served_log.push(pipe, served)
        pipe.execute()
    except redis.RedisError:
        served_log.store(served)
    return {"request_id": str(request_id), "degraded": degraded, **body}


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
