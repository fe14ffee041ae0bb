"""Readers' open-time profiles in Redis (predictive caching, OPT-002).

Every home request runs :func:`record_open` in the pipeline that already writes its served
log: one script call that counts an open (a request after the session gap) at its UTC hour
of week, as :func:`experience_app.open_times.add_open` does, keeps the time of the request,
the place and platform it came with (a feed built ahead must be the one the request would
get), renews the profile's TTL and the reader's place among the openers. The prebuild run
reads the profiles back with :func:`profiles`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings

from experience_app import open_times
from inbo import keys
from inbo import redis as inbo_redis

# KEYS: profile, openers. ARGV: now, hour field, gap seconds, place tag, platform, TTL,
# user id, cap, floor. Returns 1 when the request counted as an open.
_RECORD = """
local now = tonumber(ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[1], 't') or '0')
redis.call('HSET', KEYS[1], 't', ARGV[1], 'p', ARGV[4], 'f', ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[2], now, ARGV[7])
if now - last < tonumber(ARGV[3]) then return 0 end
redis.call('HINCRBYFLOAT', KEYS[1], ARGV[2], 1)
local n = tonumber(redis.call('HINCRBYFLOAT', KEYS[1], 'n', 1))
if n > tonumber(ARGV[8]) then
    local all = redis.call('HGETALL', KEYS[1])
    local total = 0
    for i = 1, #all, 2 do
        if string.sub(all[i], 1, 1) == 'h' then
            local v = tonumber(all[i + 1]) * 0.5
            if v < tonumber(ARGV[9]) then
                redis.call('HDEL', KEYS[1], all[i])
            else
                redis.call('HSET', KEYS[1], all[i], string.format('%.6f', v))
                total = total + v
            end
        end
    end
    redis.call('HSET', KEYS[1], 'n', string.format('%.6f', total))
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Profiles:
    """Readers' profiles as the likelihood takes them, row by row."""

    user_ids: list[int]
    counts: np.ndarray  # (m, 168) opens per UTC hour of week
    last_open: np.ndarray  # (m,) Unix time of the last home request
    place: list[str]  # the place tag of the last request ("" when none)
    platform: list[str]  # its platform ("" when none)


def record_open(
    pipe: Any, user_id: int, *, now: datetime, place: str, platform: str | None
) -> None:
    """Queue the script that counts a home request in the reader's open profile."""
    ts = now.timestamp()
    # EVAL, not EVALSHA: a pipeline holding a registered script asks SCRIPT EXISTS first,
    # a round trip more per request; Redis caches the compiled script by its digest.
    pipe.eval(
        _RECORD,
        2,
        keys.open_profile(user_id),
        keys.openers(),
        f"{ts:.3f}",
        f"h{open_times.hour_of_week(ts)}",
        settings.EXPERIENCE_SESSION_GAP_MINUTES * 60,
        place,
        platform or "",
        keys.OPEN_PROFILE_TTL_SECONDS,
        user_id,
        open_times.CAP,
        open_times.FLOOR,
    )


def _row(raw: dict[str, str]) -> tuple[np.ndarray, float]:
    counts = np.zeros(open_times.HOURS)
    for field, value in raw.items():
        if field.startswith("h") and field[1:].isdigit() and int(field[1:]) < open_times.HOURS:
            counts[int(field[1:])] = float(value)
    return counts, float(raw.get("t") or 0.0)


def openers(*, now: datetime, limit: int) -> list[int]:
    """Readers who opened the app within the profile TTL, the most recent first (at most
    ``limit``); older members are trimmed from the set."""
    client = inbo_redis.state()
    since = now.timestamp() - keys.OPEN_PROFILE_TTL_SECONDS
    client.zremrangebyscore(keys.openers(), "-inf", f"({since}")
    members = client.zrevrangebyscore(keys.openers(), "+inf", since, start=0, num=limit)
    return [int(str(m)) for m in members]


def profiles(user_ids: Sequence[int]) -> Profiles:
    """The readers' profiles (one pipelined round trip); a reader whose profile expired is
    left out."""
    pipe = inbo_redis.state().pipeline(transaction=False)
    for user_id in user_ids:
        pipe.hgetall(keys.open_profile(user_id))
    ids, rows, last, place, platform = [], [], [], [], []
    for user_id, raw in zip(user_ids, pipe.execute(), strict=True):
        if not raw:
            continue
        counts, t = _row(raw)
        ids.append(int(user_id))
        rows.append(counts)
        last.append(t)
        place.append(raw.get("p", ""))
        platform.append(raw.get("f", ""))
    counts = np.array(rows) if rows else np.zeros((0, open_times.HOURS))
    return Profiles(ids, counts, np.array(last), place, platform)
