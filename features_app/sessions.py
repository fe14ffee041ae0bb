"""Real-time reading sessions and session-kNN (issue 13, ML-005; docs/ML.md).

A **session** is what a user engaged with (click, read, save, share; never impressions) in
one sitting: the events carrying the same client ``session`` id (``EventIn.context``), or,
without one, events no more than ``EXPERIENCE_SESSION_GAP_MINUTES`` apart (the server's
session). Its state lives in Redis (keys in ``inbo.keys``, "real-time reading sessions"),
written with the counters after an event batch commits (:func:`queue_apply`, in the same
round trip as ``counters.apply_batch``) and read by the home build (:func:`next_reads`,
two round trips).

**Session-kNN** (:func:`knn_scores`): the offline winner on DeskDrop
(``ml_app.session_models.SessionKNN`` calls the same function, so what is measured is what
is served). Neighbours are the most recent sessions sharing an item with the current one;
the ``k`` most similar vote for their items with their similarity.

Everything here is derived from the event log and may be lost: a Redis error propagates
to the caller, which degrades (no session source), never fails the request.
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import redis
from django.conf import settings

from features_app.contracts import POSITIVE_TYPES, EventIn
from inbo import keys
from inbo import redis as inbo_redis

T = TypeVar("T", bound=Hashable)
K = TypeVar("K")

# The offline defaults (``ml_app.session_models.SessionKNN``).
KNN_NEIGHBOURS = 100
KNN_SAMPLE = 500
# Neighbours are looked up from the session's last this many distinct items (a bound on
# the read: at most this many item lists of KNN_SAMPLE sessions each).
QUERY_ITEMS = 10


def knn_scores(
    session: Sequence[T],
    candidates: Mapping[K, Collection[T]],
    *,
    k: int = KNN_NEIGHBOURS,
    decay: bool = True,
) -> dict[T, float]:
    """Session-kNN scores of the items of ``candidates`` after ``session`` (its items in order).

    ``candidates``: the sampled neighbour sessions, key -> item set; ties between equally
    similar sessions go to the greater key (make it recency). SKNN (``decay=False``): cosine
    of the binary item sets. V-SKNN (``decay=True``): the session's items weigh by position
    (linear, the last item 1), the similarity is the sum of the shared items' weights. The
    ``k`` most similar sessions vote for each of their items with their similarity; a
    session sharing nothing votes for nothing. Items of ``session`` are scored too: the
    caller leaves out what it must not recommend.
    """
    if not session:
        return {}
    if decay:
        weights = {item: (position + 1) / len(session) for position, item in enumerate(session)}
    else:
        weights = dict.fromkeys(session, 1.0)
    similarity: dict[K, float] = {}
    sets: dict[K, frozenset[T]] = {}
    for key, items in candidates.items():
        item_set = items if isinstance(items, frozenset) else frozenset(items)
        shared = item_set.intersection(weights)
        if not shared:
            continue
        if decay:
            similarity[key] = sum(weights[item] for item in shared)
        else:
            similarity[key] = len(shared) / math.sqrt(len(weights) * len(item_set))
        sets[key] = item_set
    neighbours = heapq.nlargest(k, similarity, key=lambda key: (similarity[key], key))
    scores: dict[T, float] = defaultdict(float)
    for key in neighbours:
        for item in sets[key]:
            scores[item] += similarity[key]
    return dict(scores)


def gap_seconds() -> int:
    return settings.EXPERIENCE_SESSION_GAP_MINUTES * 60


def _client() -> redis.Redis:
    return inbo_redis.state()


# --- writes ----------------------------------------------------------------------------

# Takes a batch's engagements in time order, at most once per batch id ('' : no id).
# KEYS: applied batch ids, session -> items, session -> last time.
# ARGV: batch id, now, gap, max items, max sessions per item, max sessions, index TTL, user
# key TTL, applied retention, item key prefix, suffix; then per event: user key, user id,
# item id, time, client session id ('' : the server's session).
_APPLY = """
local now, gap = tonumber(ARGV[2]), tonumber(ARGV[3])
local max_items, per_item = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_sessions, ttl, user_ttl = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local prefix, suffix = ARGV[10], ARGV[11]
if ARGV[1] ~= '' then
    if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
    redis.call('ZADD', KEYS[1], now, ARGV[1])
    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[9]))
end
for i = 12, #ARGV, 5 do
    local ukey, user, item = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local ts, client = tonumber(ARGV[i + 3]), ARGV[i + 4]
    local cur = redis.call('HMGET', ukey, 'sid', 'last')
    local last = tonumber(cur[2])
    local late = last ~= nil and ts < last - gap
    local sid = nil
    if client ~= '' then
        sid = user .. ':c:' .. client
    elseif cur[1] and last and not late and ts <= last + gap then
        sid = cur[1]
    elseif not late then
        sid = user .. ':g:' .. string.format('%d', math.floor(ts))
    end
    if sid then
        local stored = redis.call('HGET', KEYS[2], sid)
        local list = {}
        if stored then
            for x in string.gmatch(stored, '[^,]+') do list[#list + 1] = x end
        end
        if list[#list] ~= item then
            list[#list + 1] = item
            while #list > max_items do table.remove(list, 1) end
            redis.call('HSET', KEYS[2], sid, table.concat(list, ','))
        end
        redis.call('ZADD', KEYS[3], 'GT', ts, sid)
        local ikey = prefix .. item .. suffix
        redis.call('ZADD', ikey, 'GT', ts, sid)
        redis.call('ZREMRANGEBYRANK', ikey, 0, -(per_item + 1))
        redis.call('EXPIRE', ikey, ttl)
        if not late then
            if sid == cur[1] and last and last > ts then ts = last end
            redis.call('HSET', ukey, 'sid', sid, 'last', string.format('%.3f', ts))
            redis.call('EXPIRE', ukey, user_ttl)
        end
    end
end
local function drop(sids)
    for _, s in ipairs(sids) do
        local stored = redis.call('HGET', KEYS[2], s)
        if stored then
            for x in string.gmatch(stored, '[^,]+') do
                redis.call('ZREM', prefix .. x .. suffix, s)
            end
        end
        redis.call('HDEL', KEYS[2], s)
        redis.call('ZREM', KEYS[3], s)
    end
end
drop(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - ttl, 'LIMIT', 0, 100))
local over = redis.call('ZCARD', KEYS[3]) - max_sessions
if over > 0 then drop(redis.call('ZRANGE', KEYS[3], 0, over - 1)) end
return 1
"""


def queue_apply(
    pipe: redis.client.Pipeline, batch_id: int | None, events: Sequence[EventIn], *, now: float
) -> bool:
    """Queue on ``pipe`` the script that adds ``events``' engagements to the session state
    (once per ``batch_id``; None: unconditionally). False when there is none to add."""
    engaged = sorted(
        (e for e in events if e.event_type in POSITIVE_TYPES),
        key=lambda e: (e.occurred_at, e.user_id),
    )
    if not engaged:
        return False
    prefix, suffix = keys.item_sessions_affixes()
    gap = gap_seconds()
    args: list[str | int] = [
        "" if batch_id is None else batch_id,
        f"{now:.3f}",
        gap,
        keys.SESSION_MAX_ITEMS,
        keys.SESSION_ITEM_MAX_SESSIONS,
        keys.SESSION_INDEX_MAX_SESSIONS,
        keys.SESSION_INDEX_TTL_SECONDS,
        2 * gap,
        keys.SESSION_APPLIED_RETENTION_SECONDS,
        prefix,
        suffix,
    ]
    for e in engaged:
        client = e.context.get("session")
        args.extend(
            (
                keys.session_current(e.user_id),
                e.user_id,
                e.item_id,
                f"{e.occurred_at.timestamp():.3f}",
                client if isinstance(client, str) else "",
            )
        )
    pipe.eval(
        _APPLY,
        3,
        keys.session_applied_batches(),
        keys.session_items(),
        keys.session_recent(),
        *args,
    )
    return True


def apply(
    events: Sequence[EventIn],
    *,
    now: float,
    batch_id: int | None = None,
    client: redis.Redis | None = None,
) -> None:
    """Add ``events``' engagements to the session state now (one round trip)."""
    pipe = (client or _client()).pipeline(transaction=False)
    if queue_apply(pipe, batch_id, events, now=now):
        pipe.execute()


# --- reads -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CurrentSession:
    """The user's session in progress: its key, items in order and last engagement."""

    key: str
    items: tuple[int, ...]
    last_active: float


_CURRENT = """
local cur = redis.call('HMGET', KEYS[1], 'sid', 'last')
if not cur[1] then return {} end
return {cur[1], cur[2], redis.call('HGET', KEYS[2], cur[1]) or ''}
"""

# The KNN_SAMPLE most recent sessions but ARGV[2] in the item lists KEYS[3..], with their
# items from KEYS[1]: a flat list of (session, last time, items). Merged and cut in C in a
# scratch key (KEYS[2], deleted before the script ends): Lua only sees the sample.
_NEIGHBOURS = """
local sample = tonumber(ARGV[1])
local union = {'ZUNIONSTORE', KEYS[2], #KEYS - 2}
for k = 3, #KEYS do union[#union + 1] = KEYS[k] end
union[#union + 1] = 'AGGREGATE'
union[#union + 1] = 'MAX'
redis.call(unpack(union))
redis.call('ZREM', KEYS[2], ARGV[2])
local rows = redis.call('ZRANGE', KEYS[2], 0, sample - 1, 'REV', 'WITHSCORES')
redis.call('DEL', KEYS[2])
local out = {}
if #rows == 0 then return out end
local ids = {}
for i = 1, #rows, 2 do ids[#ids + 1] = rows[i] end
local items = redis.call('HMGET', KEYS[1], unpack(ids))
for j = 1, #ids do
    if items[j] then
        out[#out + 1] = ids[j]
        out[#out + 1] = rows[2 * j]
        out[#out + 1] = items[j]
    end
end
return out
"""


def _ids(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x)


def current_session(
    user_id: int, *, now: datetime, client: redis.Redis | None = None
) -> CurrentSession | None:
    """The user's session still in progress at ``now`` (its last engagement within the
    gap), None if there is none: one round trip."""
    pipe = (client or _client()).pipeline(transaction=False)
    pipe.eval(_CURRENT, 2, keys.session_current(user_id), keys.session_items())
    (reply,) = pipe.execute()
    if not reply:
        return None
    key, last, items = reply
    last_active = float(last)
    if now.timestamp() - last_active > gap_seconds():
        return None
    found = _ids(items)
    return CurrentSession(key, found, last_active) if found else None


def next_reads(
    session: CurrentSession, *, limit: int, client: redis.Redis | None = None
) -> list[tuple[int, float]]:
    """Session-kNN's ``limit`` best next items after ``session``, scores scaled to [0, 1]
    (the best is 1), items of the session left out: one round trip."""
    query = list(dict.fromkeys(reversed(session.items)))[:QUERY_ITEMS]
    pipe = (client or _client()).pipeline(transaction=False)
    pipe.eval(
        _NEIGHBOURS,
        2 + len(query),
        keys.session_items(),
        keys.session_scratch(),
        *(keys.item_sessions(item) for item in query),
        KNN_SAMPLE,
        session.key,
    )
    (reply,) = pipe.execute()
    candidates = {
        (float(reply[i + 1]), reply[i]): _ids(reply[i + 2]) for i in range(0, len(reply), 3)
    }
    scores = knn_scores(session.items, candidates)
    for item in session.items:
        scores.pop(item, None)
    best = heapq.nlargest(limit, scores.items(), key=lambda pair: (pair[1], -pair[0]))
    if not best:
        return []
    top = best[0][1]
    return [(item, round(score / top, 4)) for item, score in best]
