"""Redis counters: written in one round trip per batch, read in one round trip per feed.

Everything here is derived from the event log in PostgreSQL and can be rebuilt from it;
a Redis error propagates to the caller, which decides how to degrade.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings

from features_app import context_counters, sessions
from features_app.contracts import (
    AFFINITY_WEIGHTS,
    POSITIVE_TYPES,
    EventIn,
    EventType,
    ItemSignals,
    UserProfile,
)
from features_app.forgetting import Rules
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.public import ItemFacets

logger = logging.getLogger(__name__)

# Decayed sums are stored scaled to the start of an epoch; an epoch lasts this many
# half-lives (2**200 stays far inside a double's range), and readers add two epochs.
EPOCH_HALF_LIVES = 200
_COUNT_FIELDS = {
    "impressions": EventType.IMPRESSION,
    "clicks": EventType.CLICK,
    "reads": EventType.READ,
    "saves": EventType.SAVE,
    "dismisses": EventType.DISMISS,
}


@dataclass(frozen=True, slots=True)
class Decay:
    """Exponential decay with a half-life, anchored to epochs of fixed length."""

    half_life_hours: float

    @property
    def half_life_seconds(self) -> float:
        return self.half_life_hours * 3600.0

    @property
    def epoch_seconds(self) -> float:
        return self.half_life_seconds * EPOCH_HALF_LIVES

    def epoch(self, ts: float) -> int:
        return int(ts // self.epoch_seconds)

    def scale(self, ts: float) -> float:
        """Weight of an event at ``ts``, relative to the start of its epoch."""
        start = self.epoch(ts) * self.epoch_seconds
        return 2.0 ** ((ts - start) / self.half_life_seconds)

    def to_now(self, epoch: int, now: float) -> float:
        """Factor that turns an epoch's stored score into its value at ``now``."""
        start = epoch * self.epoch_seconds
        return 2.0 ** (-(now - start) / self.half_life_seconds)


def click_decay() -> Decay:
    return Decay(settings.FEATURES_CLICK_HALF_LIFE_HOURS)


def _client() -> redis.Redis:
    return inbo_redis.state()


# HSETNX would keep whichever impression was ingested first, but a client that was offline
# sends older impressions later: keep the earliest time instead, for the whole batch at once.
_KEEP_EARLIEST = """
for i = 1, #ARGV, 2 do
    local current = redis.call('HGET', KEYS[1], ARGV[i])
    if not current or tonumber(ARGV[i + 1]) < tonumber(current) then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    end
end
return 0
"""


# An event's type by its stored value (a StrEnum member hashes as its value), and its
# counter field's name: lookups cost less than ``EventType(value)`` and ``.value``.
_TYPES: dict[str, EventType] = {kind.value: kind for kind in EventType}
_NAMES: dict[EventType, str] = {kind: kind.value for kind in EventType}


def _group_key(event: EventIn) -> object:
    return event.context.get("request_id") or event.context.get("impression_id")


Op = tuple[str, str, str, int | float | str]


def batch_ops(
    events: Sequence[EventIn], facets: Mapping[int, ItemFacets], *, forget: Rules | None = None
) -> list[Op]:
    """The writes that count one stored batch: ``(op, key, field, value)``.

    Increments are summed client-side first, so a batch of a thousand events is a few
    hundred writes, not thousands. The batch matters: a list's click rate and the
    seen-without-click memory are worked out within it. ``forget`` (``forgetting.rules``)
    leaves out of a user's affinity, seen memory and counts what they asked to forget;
    item counters always count every event.
    """
    if not events:
        return []
    ordered = sorted(events, key=lambda e: (e.occurred_at, e.event_type != EventType.IMPRESSION))
    decay = click_decay()
    # The decay's constants and each event's type and list, worked out once: this loop runs
    # for every ingested event (the same arithmetic as ``Decay.epoch`` and ``Decay.scale``).
    half_life = decay.half_life_seconds
    epoch_length = decay.epoch_seconds
    kinds = [_TYPES.get(e.event_type) or EventType(e.event_type) for e in ordered]
    groups = [_group_key(e) for e in ordered]

    # Expected clicks: each impression carries the click rate of the list it was shown in
    # (same request/impression id in this batch); without a list, the global prior.
    lists: dict[object, list[int]] = defaultdict(lambda: [0, 0])  # [impressions, clicks]
    for kind, group in zip(kinds, groups, strict=True):
        if group is None:
            continue
        if kind == EventType.IMPRESSION:
            lists[group][0] += 1
        elif kind == EventType.CLICK:
            lists[group][1] += 1
    prior = settings.FEATURES_PRIOR_CTR

    item_counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    daily: dict[tuple[int, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    user_counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    user_last: dict[int, float] = {}  # each user's latest event: their keys expire after it
    affinity: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    clicks: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    expected: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    first_seen: dict[int, float] = {}
    # (user, item) -> [cleared since last impression?, impressions after the last clear]
    seen: dict[tuple[int, int], list] = {}
    block_items = keys.ITEM_DAILY_BLOCK_ITEMS

    for e, kind, group in zip(ordered, kinds, groups, strict=True):
        name = _NAMES[kind]
        item_id, user_id = e.item_id, e.user_id
        ts = e.occurred_at.timestamp()
        day = int(ts // 86400)
        item_counts[item_id][name] += 1
        dwell = e.context.get("dwell_ms")
        if type(dwell) is int and dwell > 0:  # not a bool, not a float: as reconcile counts
            item_counts[item_id]["dwell_ms"] += dwell
        daily[(day, item_id // block_items)][f"{item_id}:{name}"] += 1
        last = user_last.get(user_id)
        user_last[user_id] = ts if last is None else max(last, ts)
        rule = forget.get(user_id) if forget else None
        whole = rule is not None and rule.all(ts)
        if not whole:
            user_counts[user_id][name] += 1
        weight = AFFINITY_WEIGHTS[kind]
        if weight and not whole and (facet := facets.get(item_id)) is not None:
            for category_id in facet.category_ids:
                if rule is None or not rule.category(category_id, ts):
                    affinity[user_id][f"c{category_id}"] += weight
            if rule is None or not rule.provider(facet.provider_id, ts):
                affinity[user_id][f"p{facet.provider_id}"] += weight
        # A forgotten event leaves the seen memory as it was (a throwaway state).
        state = [False, 0] if whole else seen.setdefault((user_id, item_id), [False, 0])
        if kind == EventType.IMPRESSION:
            if group is not None and lists[group][0]:
                share = lists[group][1] / lists[group][0]
            else:
                share = prior
            epoch = int(ts // epoch_length)
            scale = 2.0 ** ((ts - epoch * epoch_length) / half_life)
            expected[epoch][item_id] += scale * share
            seen_at = first_seen.get(item_id)
            first_seen[item_id] = ts if seen_at is None else min(seen_at, ts)
            state[1] += 1
        elif kind == EventType.CLICK:
            epoch = int(ts // epoch_length)
            clicks[epoch][item_id] += 2.0 ** ((ts - epoch * epoch_length) / half_life)
        if kind in POSITIVE_TYPES:
            state[0], state[1] = True, 0

    ops: list[Op] = []
    for item_id, counts in item_counts.items():
        for field_name, n in counts.items():
            ops.append(("hi", keys.item_counts(item_id), field_name, n))
    dirty = keys.dirty_items()
    for item_id in item_counts:
        ops.append(("sa", dirty, str(item_id), 0))  # the sync job picks these up
    for (day, block), counts in daily.items():
        key = keys.item_daily(day, block * block_items)
        for field_name, n in counts.items():
            ops.append(("hi", key, field_name, n))
        ops.append(("ea", key, "", keys.item_daily_expires_at(day)))
    # A user's keys expire ``FEATURES_USER_IDLE_DAYS`` after their latest event (never
    # earlier than an expiry already set: an offline client's old events come late).
    idle = user_idle_seconds()
    for user_id, counts in user_counts.items():
        key = keys.user_counts(user_id)
        for field_name, n in counts.items():
            ops.append(("hi", key, field_name, n))
        ops.append(("ea", key, "", int(user_last[user_id]) + idle))
    for user_id, weights in affinity.items():
        key = keys.user_affinity(user_id)
        for field_name, w in weights.items():
            ops.append(("hf", key, field_name, w))
        ops.append(("ea", key, "", int(user_last[user_id]) + idle))
    for kind_name, per_epoch in (("clicks", clicks), ("expected", expected)):
        for epoch, masses in per_epoch.items():
            key = keys.decayed(kind_name, decay.half_life_hours, epoch)
            for item_id, mass in masses.items():
                ops.append(("zi", key, str(item_id), mass))
            ops.append(("ex", key, "", decayed_ttl(decay)))
    first_seen_key = keys.item_first_seen()
    for item_id, ts in first_seen.items():
        ops.append(("mn", first_seen_key, str(item_id), f"{ts:.3f}"))
    seen_keys: dict[int, str] = {}  # the users touched, and their key
    for (user_id, item_id), (cleared, count) in seen.items():
        key = seen_keys.get(user_id) or seen_keys.setdefault(user_id, keys.user_seen(user_id))
        if cleared:
            ops.append(("hd", key, str(item_id), 0))
        if count:
            ops.append(("hi", key, str(item_id), count))
    for user_id in set(seen_keys):  # in a set's order, as they always were
        ops.append(("ea", seen_keys[user_id], "", int(user_last[user_id]) + idle))
    ops += context_counters.batch_ops(ordered, decay, forget=forget)  # time and place (issue 13)
    return ops


def decayed_ttl(decay: Decay) -> int:
    return int(decay.epoch_seconds * 2) + 86400


def user_idle_seconds() -> int:
    """How long a user's keys outlive their latest event (``FEATURES_USER_IDLE_DAYS``)."""
    return int(settings.FEATURES_USER_IDLE_DAYS * 86400)


# Op ``ea``: expire at a Unix time (at least ``keys.EXPIRED_WRITE_GRACE_SECONDS`` from now),
# only later than an expiry already set (EXPIRETIME: -1 no expiry, -2 no key).
_EXPIRE_AT_LATEST = """
local floor = tonumber(redis.call('TIME')[1]) + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
    local at = math.max(tonumber(ARGV[i + 1]), floor)
    local current = redis.call('EXPIRETIME', ARGV[i])
    if current == -1 or (current >= 0 and current < at) then
        redis.call('EXPIREAT', ARGV[i], at)
    end
end
return 0
"""


def apply_events(
    events: Sequence[EventIn],
    facets: Mapping[int, ItemFacets],
    *,
    pipe: redis.client.Pipeline | None = None,
    forget: Rules | None = None,
) -> None:
    """Add events to every counter, in one pipelined round trip, unconditionally.

    For the jobs that hold the counting pause (restore's replay); ingestion and the pending
    sweep use :func:`apply_batch`, which records the batch as applied in the same step.
    With ``pipe``, the commands are queued there for the caller to execute (several
    batches, one round trip). ``forget``: as :func:`batch_ops`.
    """
    ops = batch_ops(events, facets, forget=forget)
    if not ops:
        return
    own_pipe = pipe is None
    if pipe is None:
        pipe = _client().pipeline(transaction=False)
    earliest: list[str] = []
    expire_at: list[str | int] = []
    for op, key, name, value in ops:
        if op == "hi":
            pipe.hincrby(key, name, int(value))
        elif op == "hf":
            pipe.hincrbyfloat(key, name, float(value))
        elif op == "zi":
            pipe.zincrby(key, float(value), name)
        elif op == "ex":
            pipe.expire(key, int(value))
        elif op == "ea":
            expire_at.extend((key, int(value)))
        elif op == "sa":
            pipe.sadd(key, name)
        elif op == "hd":
            pipe.hdel(key, name)
        elif op == "mn":
            earliest.extend((name, str(value)))
        elif op == "zt":  # keep the top ``value`` members
            pipe.zremrangebyrank(key, 0, -int(value) - 1)
    if earliest:
        pipe.eval(_KEEP_EARLIEST, 1, keys.item_first_seen(), *earliest)
    if expire_at:  # after the writes: the keys exist
        pipe.eval(_EXPIRE_AT_LATEST, 0, keys.EXPIRED_WRITE_GRACE_SECONDS, *expire_at)
    if own_pipe:
        pipe.execute()


# One batch, applied whole or not at all, and at most once: refused while a job pauses
# counting (-1), a no-op when the batch id is already recorded (0), else every counter and
# the batch id in one atomic step (1). ARGV: batch id, time, the grace of op ``ea``, then
# the ops, a JSON array of [op, key, field, value] string quadruples: one argument, not four
# per op (packing thousands of arguments cost ingestion more than building the ops).
_APPLY_BATCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
for _, o in ipairs(cjson.decode(ARGV[4])) do
    local op, key, name, value = o[1], o[2], o[3], o[4]
    if op == 'hi' then redis.call('HINCRBY', key, name, value)
    elseif op == 'hf' then redis.call('HINCRBYFLOAT', key, name, value)
    elseif op == 'zi' then redis.call('ZINCRBY', key, value, name)
    elseif op == 'ex' then redis.call('EXPIRE', key, value)
    elseif op == 'ea' then
        local at = math.max(tonumber(value), tonumber(redis.call('TIME')[1]) + ARGV[3])
        local current = redis.call('EXPIRETIME', key)
        if current == -1 or (current >= 0 and current < at) then
            redis.call('EXPIREAT', key, at)
        end
    elseif op == 'sa' then redis.call('SADD', key, name)
    elseif op == 'hd' then redis.call('HDEL', key, name)
    elseif op == 'zt' then redis.call('ZREMRANGEBYRANK', key, 0, -tonumber(value) - 1)
    elseif op == 'mn' then
        local current = redis.call('HGET', key, name)
        if not current or tonumber(value) < tonumber(current) then
            redis.call('HSET', key, name, value)
        end
    end
end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
return 1
"""
APPLIED, ALREADY_APPLIED, PAUSED = 1, 0, -1


def apply_batch(
    batch_id: int,
    events: Sequence[EventIn],
    facets: Mapping[int, ItemFacets],
    *,
    client: redis.Redis | None = None,
) -> int:
    """Apply one stored batch (a ``PendingCount`` row) exactly once: APPLIED, ALREADY_APPLIED
    or PAUSED. The counters and the batch's applied marker change in one script, so a job
    that pauses counting reads a state and the set of batches it reflects together."""
    ops = json.dumps(
        [
            # repr: a float's shortest exact text, an int's digits (str's own text as it is).
            (op, key, name, value if value.__class__ is str else repr(value))
            for op, key, name, value in batch_ops(events, facets)
        ]
    )
    args: list[str | int] = [batch_id, f"{time.time():.3f}", keys.EXPIRED_WRITE_GRACE_SECONDS, ops]
    # Through a pipeline: unlike a single command, it reconnects and sends again when the
    # pooled connection died with a restarted server; sending twice is safe (the marker).
    pipe = (client or _client()).pipeline(transaction=False)
    pipe.eval(
        _APPLY_BATCH, 2, keys.features_counting_paused(), keys.features_applied_batches(), *args
    )
    # The reading sessions take the batch's engagements in the same round trip (once per
    # batch by their own marker: also while counting is paused, as they are no counter).
    with_sessions = sessions.queue_apply(pipe, batch_id, events, now=time.time())
    replies = pipe.execute(raise_on_error=False)
    if isinstance(replies[0], Exception):
        raise replies[0]
    if with_sessions and isinstance(replies[1], Exception):
        # Sessions are a nicety: their fault never holds back the counters (nor repeats them).
        logger.warning("features.sessions_unavailable batch=%s error=%s", batch_id, replies[1])
    return int(replies[0])


# Every candidate's signals in one command and one reply (read-only): a pipeline of one
# HGETALL per item, or ZMSCOREs naming every item four times, costs the client far more to
# pack and parse than the server to answer (as ``context_counters._ITEMS_HOURS``).
# KEYS: the decayed clicks (this epoch, the last), the decayed expected clicks (the same),
# the first-seen hash, then each item's counts hash (none: no counts); ARGV: the number of
# count fields, those fields, the item ids. Reply: the four decayed sums' scores and the
# first-seen times per item (strings, or nil), then each item's counts.
_ITEMS_SIGNALS = """
local nfields = tonumber(ARGV[1])
local function per_item(command, key)  -- in slices: unpack's limit is ~8000 values
    local replies = {}
    for from = nfields + 2, #ARGV, 1000 do
        local part = redis.call(command, key, unpack(ARGV, from, math.min(from + 999, #ARGV)))
        for _, reply in ipairs(part) do replies[#replies + 1] = reply end
    end
    return replies
end
local out = {}
for j = 1, 4 do out[j] = per_item('ZMSCORE', KEYS[j]) end
out[5] = per_item('HMGET', KEYS[5])
local counts = {}
for i = 6, #KEYS do counts[i - 5] = redis.call('HMGET', KEYS[i], unpack(ARGV, 2, nfields + 1)) end
out[6] = counts
return out
"""
_COUNT_NAMES = tuple(kind.value for kind in _COUNT_FIELDS.values())


def _decayed_now(values: Iterable[str | None], factor: float) -> list[float]:
    return [(float(v) if v else 0.0) * factor for v in values]


def item_signals(
    item_ids: Sequence[int], *, now: datetime, with_counts: bool = True
) -> dict[int, ItemSignals]:
    """Signals of ``item_ids`` at ``now``: one command (a read-only script).

    ``with_counts=False`` skips the lifetime counts (each item's hash), which ranking does
    not use; the decayed sums and first-seen times are always read.
    """
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        return {}
    decay = click_decay()
    ts = now.timestamp()
    epoch = decay.epoch(ts)
    epochs = (epoch, epoch - 1)
    sums = [
        keys.decayed(kind, decay.half_life_hours, e)
        for kind in ("clicks", "expected")
        for e in epochs
    ]
    counted = [keys.item_counts(i) for i in ids] if with_counts else []
    fields = _COUNT_NAMES if with_counts else ()
    # Through a pipeline, as every read here: it reconnects once when a pooled connection
    # died with a restarted server.
    pipe = _client().pipeline(transaction=False)
    pipe.eval(
        _ITEMS_SIGNALS,
        len(sums) + 1 + len(counted),
        *sums,
        keys.item_first_seen(),
        *counted,
        len(fields),
        *fields,
        *ids,
    )
    ((c_cur, c_prev, x_cur, x_prev, first, counts),) = pipe.execute()
    if not with_counts:
        counts = [[None] * len(_COUNT_NAMES)] * len(ids)
    factors = [decay.to_now(e, ts) for e in epochs]
    clicks_now = [
        a + b
        for a, b in zip(
            _decayed_now(c_cur, factors[0]), _decayed_now(c_prev, factors[1]), strict=True
        )
    ]
    expected_now = [
        a + b
        for a, b in zip(
            _decayed_now(x_cur, factors[0]), _decayed_now(x_prev, factors[1]), strict=True
        )
    ]
    result = {}
    for i, item_id in enumerate(ids):
        # In ``_COUNT_FIELDS``'s order, as ``_COUNT_NAMES`` asked for them.
        impressions, clicks, reads, saves, dismisses = (int(v or 0) for v in counts[i])
        seen_at = first[i]
        result[item_id] = ItemSignals(
            item_id=item_id,
            impressions=impressions,
            clicks=clicks,
            reads=reads,
            saves=saves,
            dismisses=dismisses,
            decayed_clicks=clicks_now[i],
            decayed_expected=expected_now[i],
            first_seen=datetime.fromtimestamp(float(seen_at), tz=UTC) if seen_at else None,
        )
    return result


def user_profile(user_id: int) -> UserProfile:
    """A user's event counts, affinities and seen-without-click memory: one round trip."""
    pipe = _client().pipeline(transaction=False)
    pipe.hgetall(keys.user_counts(user_id))
    pipe.hgetall(keys.user_affinity(user_id))
    pipe.hgetall(keys.user_seen(user_id))
    counts, affinity, seen = pipe.execute()
    categories: dict[int, float] = {}
    providers: dict[int, float] = {}
    for name, value in affinity.items():
        target = categories if name.startswith("c") else providers
        target[int(name[1:])] = float(value)
    return UserProfile(
        user_id=user_id,
        event_counts={k: int(v) for k, v in counts.items()},
        category_affinity=categories,
        provider_affinity=providers,
        seen={int(k): int(v) for k, v in seen.items() if int(v) > 0},
    )


def trending(*, now: datetime, limit: int) -> list[tuple[int, float]]:
    """Items with the most decayed clicks at ``now`` (time-decayed popularity)."""
    decay = click_decay()
    ts = now.timestamp()
    epoch = decay.epoch(ts)
    pipe = _client().pipeline(transaction=False)
    for e in (epoch, epoch - 1):
        pipe.zrevrange(
            keys.decayed("clicks", decay.half_life_hours, e), 0, limit - 1, withscores=True
        )
    current, previous = pipe.execute()
    totals: Counter[int] = Counter()
    for rows, e in ((current, epoch), (previous, epoch - 1)):
        factor = decay.to_now(e, ts)
        for member, score in rows:
            totals[int(member)] += score * factor
    return [(item_id, mass) for item_id, mass in totals.most_common(limit) if mass > 1e-9]
