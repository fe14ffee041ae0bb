"""Moving the day buckets from the v1 layout to v2 (``manage.py migrate_counters``).

v1 kept one hash per UTC day with every item's fields (``<item_id>:<type>``): far beyond
``hash-max-listpack-entries``, so a hashtable at ~72 bytes a field. v2 splits each day by
block of ``keys.ITEM_DAILY_BLOCK_ITEMS`` item ids, small hashes that stay listpacks
(docs/FEATURE_STORE.md measures both). Counting writes v2 only; readers add a v1 day still
there, so the figures are right before, during and after the move.

The move is exactly once per field: one script reads a v1 field, adds it to its v2 bucket
with HINCRBY and deletes it from the v1 hash, atomically, a chunk of fields at a time. A run
that dies leaves the fields it had not moved in the v1 hash, and the next run moves just
those; a second run finds nothing. The script refuses while a job pauses counting
(snapshot, restore, reconcile's read: their copy or state must not catch a field on its
way), and the run waits for the pause to end. So ingestion, reconcile, snapshots and
restores may run throughout. A restore of a snapshot taken before the move brings v1 days
back: readers count them, and a new run moves them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import redis

from inbo import keys

# KEYS: the counting pause, the v1 day. ARGV: triples (field, v2 key, its expiry time).
_MOVE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local moved = 0
for i = 1, #ARGV, 3 do
    local value = redis.call('HGET', KEYS[2], ARGV[i])
    if value then
        redis.call('HINCRBY', ARGV[i + 1], ARGV[i], value)
        local current = redis.call('EXPIRETIME', ARGV[i + 1])
        if current == -1 or (current >= 0 and current < tonumber(ARGV[i + 2])) then
            redis.call('EXPIREAT', ARGV[i + 1], ARGV[i + 2])
        end
        redis.call('HDEL', KEYS[2], ARGV[i])
        moved = moved + 1
    end
end
return moved
"""
PAUSED = -1


class MigrationPaused(Exception):
    """Counting stayed paused longer than the run was willing to wait."""


@dataclass
class DayMoved:
    day: int
    fields: int  # fields moved (dry run: fields to move)
    buckets: int  # v2 hashes they went to


@dataclass
class MigrationReport:
    dry_run: bool
    days: list[DayMoved]
    seconds: float = 0.0

    @property
    def fields(self) -> int:
        return sum(d.fields for d in self.days)


def legacy_days(client: redis.Redis, *, count: int = 1000) -> list[int]:
    """The days that still have a v1 hash, oldest first."""
    days = set()
    for name in client.scan_iter(match=keys.item_daily_legacy_pattern(), count=count):
        parsed = keys.item_daily_parse(name)
        if parsed is not None and parsed[1] is None:
            days.add(parsed[0])
    return sorted(days)


def _move_chunk(
    client: redis.Redis, day: int, fields: list[str], wait_seconds: float, sleep: float
) -> int:
    args: list[str | int] = []
    expire_at = keys.item_daily_expires_at(day)
    for name in fields:
        args.extend((name, keys.item_daily(day, int(name.split(":", 1)[0])), expire_at))
    deadline = time.monotonic() + wait_seconds
    while True:
        moved = int(
            client.eval(
                _MOVE, 2, keys.features_counting_paused(), keys.item_daily_legacy(day), *args
            )
        )
        if moved != PAUSED:
            return moved
        if time.monotonic() > deadline:
            raise MigrationPaused(
                f"counting stayed paused for {wait_seconds:g}s (a snapshot, restore or "
                "reconcile is running); run again later: nothing was moved twice"
            )
        time.sleep(sleep)


def migrate_day(
    client: redis.Redis,
    day: int,
    *,
    batch: int = 500,
    dry_run: bool = False,
    wait_seconds: float = 600.0,
    sleep: float = 0.5,
) -> DayMoved:
    """Move one v1 day into its v2 buckets (see the module docstring), ``batch`` fields per
    script (each script blocks Redis for about that many HINCRBYs)."""
    legacy = keys.item_daily_legacy(day)
    moved, buckets = 0, set[int]()
    for _ in range(3):  # HSCAN may skip fields added meanwhile (a restore): look again
        cursor = 0
        while True:
            cursor, chunk = client.hscan(legacy, cursor, count=batch)
            names = [str(n) for n in chunk]
            buckets.update(int(n.split(":", 1)[0]) // keys.ITEM_DAILY_BLOCK_ITEMS for n in names)
            if names and dry_run:
                moved += len(names)
            elif names:
                moved += _move_chunk(client, day, names, wait_seconds, sleep)
            if cursor == 0:
                break
        if dry_run or not client.exists(legacy):
            break
    return DayMoved(day=day, fields=moved, buckets=len(buckets))


def migrate(
    client: redis.Redis,
    *,
    batch: int = 500,
    dry_run: bool = False,
    wait_seconds: float = 600.0,
    progress: Callable[[DayMoved], None] | None = None,
) -> MigrationReport:
    """Move every v1 day bucket into the v2 layout (or, ``dry_run``, count what would move).
    Idempotent and resumable; safe under live traffic."""
    started = time.monotonic()
    report = MigrationReport(dry_run=dry_run, days=[])
    for day in legacy_days(client, count=batch):
        done = migrate_day(client, day, batch=batch, dry_run=dry_run, wait_seconds=wait_seconds)
        report.days.append(done)
        if progress:
            progress(done)
    report.seconds = round(time.monotonic() - started, 3)
    return report
