"""Time and place counters (issue 13, FEAT-003/004): when and where items are opened.

Counted with every other counter, in the same batch (``counters.batch_ops``), from each
open (a ``click`` event):

- the user's opens by local hour of week (168 fields at most);
- each item's opens by the reader's local hour of day (24 fields), and every item's;
- decayed opens per item by the reader's country, and the totals per country and for
  everyone (``all``): the regional popularity the feed compares with the global one (an
  item's opens by everyone are its decayed clicks, ``keys.decayed``).

The local time and the place come with the event (``UserEvent.context``: ``local_how``,
``country``), stamped by whoever recorded it (``experience_app`` knows the reader's time
zone and place); an event without them counts at its UTC hour and in no country. So the
counters are a function of the log, like every other counter, and can be rebuilt from it.
Memory is bounded: fixed hour fields, and each country's sorted set trimmed to
``keys.REGION_ITEMS_MAX`` members (countries: valid ISO 3166-1 codes only).

Pure readers below turn the raw counts into :class:`ContextCounts`; the signal functions
live in ``experience_app.time_place`` (serving and the offline evaluation share them).
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings

from features_app.contracts import EventIn, EventType
from inbo import keys
from inbo import redis as inbo_redis

if TYPE_CHECKING:
    from features_app.counters import Decay, Op
    from features_app.forgetting import Rules

ALL = "all"
# Country codes as stamped (validated against ISO 3166-1 where the place is resolved);
# anything else is counted in no country.
_COUNTRY = re.compile(r"^[A-Z]{2}$")
HOURS_OF_WEEK = 168


def local_how(event: EventIn) -> int:
    """The event's local hour of week as stamped, else its UTC one (0 = Monday 00h)."""
    value = event.context.get("local_how")
    if type(value) is int and 0 <= value < HOURS_OF_WEEK:
        return value
    at = event.occurred_at
    return at.weekday() * 24 + at.hour


def event_country(event: EventIn) -> str | None:
    value = event.context.get("country")
    return value if isinstance(value, str) and _COUNTRY.match(value) else None


def batch_ops(events: Sequence[EventIn], decay: Decay, *, forget: Rules | None = None) -> list[Op]:
    """The writes that count the opens of one batch (see the module docstring). A user's
    hours leave out the events they reset (``forget``); the items' hours and the regional
    sums count every open, as the item counters do."""
    user_hours: dict[int, Counter[str]] = defaultdict(Counter)
    item_hours: dict[int, Counter[str]] = defaultdict(Counter)
    all_hours: Counter[str] = Counter()
    regional: dict[tuple[str, int], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    totals: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for e in events:
        if e.event_type != EventType.CLICK:
            continue
        how = local_how(e)
        rule = forget.get(e.user_id) if forget else None
        if rule is None or not rule.all(e.occurred_at.timestamp()):
            user_hours[e.user_id][str(how)] += 1
        item_hours[e.item_id][str(how % 24)] += 1
        all_hours[str(how % 24)] += 1
        ts = e.occurred_at.timestamp()
        epoch, mass = decay.epoch(ts), decay.scale(ts)
        totals[epoch][ALL] += mass
        country = event_country(e)
        if country is not None:
            regional[country, epoch][str(e.item_id)] += mass
            totals[epoch][country] += mass
    ops: list[Op] = []
    for user_id, counts in user_hours.items():
        key = keys.user_hours(user_id)
        ops.extend(("hi", key, name, n) for name, n in counts.items())
        ops.append(("ex", key, "", int(settings.FEATURES_USER_IDLE_DAYS * 86400)))
    for item_id, counts in item_hours.items():
        key = keys.item_hours(item_id)
        ops.extend(("hi", key, name, n) for name, n in counts.items())
        ops.append(("ex", key, "", keys.ITEM_HOURS_TTL_SECONDS))
    ops.extend(("hi", keys.hours_global(), name, n) for name, n in all_hours.items())
    ttl = int(decay.epoch_seconds * 2) + 86400
    for (place, epoch), masses in regional.items():
        key = keys.region_clicks(place, decay.half_life_hours, epoch)
        ops.extend(("zi", key, item, mass) for item, mass in masses.items())
        ops.append(("zt", key, "", keys.REGION_ITEMS_MAX))
        ops.append(("ex", key, "", ttl))
    for epoch, per_place in totals.items():
        key = keys.region_totals(decay.half_life_hours, epoch)
        ops.extend(("hf", key, place, mass) for place, mass in per_place.items())
        ops.append(("ex", key, "", ttl))
    return ops


@dataclass(frozen=True, slots=True)
class ContextCounts:
    """What the time and place signals of one feed are computed from (raw counts).

    ``user_hours``: the user's opens by local hour of week; ``item_hours``: per item, opens
    by readers' local hour of day, and ``all_hours`` the same for every item;
    ``regional``: per item, (decayed opens in the user's country, decayed opens by
    everyone); ``region_total``: (the country's total, everyone's total). Empty without a
    country.
    """

    user_hours: dict[int, float] = field(default_factory=dict)
    item_hours: dict[int, dict[int, float]] = field(default_factory=dict)
    all_hours: dict[int, float] = field(default_factory=dict)
    regional: dict[int, tuple[float, float]] = field(default_factory=dict)
    region_total: tuple[float, float] = (0.0, 0.0)


def _hours(raw: dict[str, str]) -> dict[int, float]:
    return {int(k): float(v) for k, v in raw.items() if k.isdigit()}


def _flat_hours(raw: list[str]) -> dict[int, float]:
    """``_hours`` of an HGETALL reply as Lua returns it: ``[field, value, field, value…]``."""
    return {int(k): float(v) for k, v in zip(raw[::2], raw[1::2], strict=False) if k.isdigit()}


# Every candidate's hours in one command and one reply (read-only; microseconds per key in
# Redis): a pipeline of one HGETALL per item costs the client far more to pack and parse
# than the server to answer (~15 µs per command with hundreds of candidates).
_ITEMS_HOURS = """
local out = {}
for i, key in ipairs(KEYS) do out[i] = redis.call('HGETALL', key) end
return out
"""


def context_counts(
    user_id: int,
    item_ids: Sequence[int],
    *,
    country: str | None,
    now: datetime,
    decay: Decay,
) -> ContextCounts:
    """The counts behind the time and place signals: one pipelined round trip. Raises
    ``redis.RedisError`` (the caller leaves the signals out)."""
    ids = list(dict.fromkeys(item_ids))
    ts = now.timestamp()
    epochs = (decay.epoch(ts), decay.epoch(ts) - 1)
    pipe = inbo_redis.state().pipeline(transaction=False)
    pipe.hgetall(keys.user_hours(user_id))
    pipe.hgetall(keys.hours_global())
    if ids:
        pipe.eval(_ITEMS_HOURS, len(ids), *(keys.item_hours(item_id) for item_id in ids))
    places = (country, ALL) if country and ids else ()
    if places:
        members = [str(i) for i in ids]
        for e in epochs:
            pipe.zmscore(keys.region_clicks(places[0], decay.half_life_hours, e), members)
        # Everyone's opens are the decayed clicks ranking already keeps (same decay).
        for e in epochs:
            pipe.zmscore(keys.decayed("clicks", decay.half_life_hours, e), members)
        for e in epochs:
            pipe.hmget(keys.region_totals(decay.half_life_hours, e), list(places))
    replies = pipe.execute()
    user_raw, all_raw = replies[0], replies[1]
    item_raw = replies[2] if ids else []
    rest = replies[3:] if ids else replies[2:]
    regional: dict[int, tuple[float, float]] = {}
    region_total = (0.0, 0.0)
    if places:
        factors = [decay.to_now(e, ts) for e in epochs]
        here = [sum((rest[j][i] or 0.0) * factors[j] for j in range(2)) for i in range(len(ids))]
        everywhere = [
            sum((rest[2 + j][i] or 0.0) * factors[j] for j in range(2)) for i in range(len(ids))
        ]
        regional = {item: (here[i], max(here[i], everywhere[i])) for i, item in enumerate(ids)}
        tot = rest[4:6]
        region_total = (
            sum(float(tot[j][0] or 0.0) * factors[j] for j in range(2)),
            sum(float(tot[j][1] or 0.0) * factors[j] for j in range(2)),
        )
    return ContextCounts(
        user_hours=_hours(user_raw),
        item_hours={item: _flat_hours(raw) for item, raw in zip(ids, item_raw, strict=True) if raw},
        all_hours=_hours(all_raw),
        regional=regional,
        region_total=region_total,
    )
