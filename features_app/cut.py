"""Consistent cuts of the event log and the counters (ADR 0016).

A cut is the set of events the Redis counters reflect at one moment. A job that needs one
(reconcile, snapshot, restore) first pauses counting (``jobs.run(pause_counting=True)``):
from then on no batch is applied and the counters stand still. Then, in this order:

1. it reads the applied-batch markers (written by the counting script with the counters);
2. it takes the log's watermark ``W``: the exclusive advisory lock waits for every
   transaction that is storing events (each holds the shared lock), so every event with an
   id up to ``max(id)`` is committed and no event at or below it can appear later;
3. it reads the pending batches: an event up to ``W`` whose batch is pending and not marked
   applied was never counted.

So the counters reflect exactly ``{id <= W} - unapplied``, whatever commits meanwhile.
Ids come from one sequence but commit out of order, which is why ``W`` is taken under the
lock and not read as a plain ``max(id)``.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import redis
from django.db import connection, transaction

from features_app import counters
from features_app.contracts import EventIn, EventType
from features_app.forgetting import Rules
from features_app.models import PendingCount, UserEvent
from inbo import keys
from reading_app.public import item_facets

# pg_advisory_xact_lock_shared(LOG_LOCK) is held by every transaction that stores events.
LOG_LOCK = 0x696E626F_6C6F67
TABLE = UserEvent._meta.db_table
REPLAY_BATCH = 5000

# Counter families: the ``thing`` part of a counter key, and the name drift is reported by.
FAMILIES = {
    "item_counts": "item",
    "item_daily": "daily",
    "user_counts": "user",
    "decayed_clicks": "decayed_clicks",
    "decayed_expected": "decayed_expected",
    "user_affinity": "affinity",
    "user_seen": "seen",
    "item_first_seen": "first_seen",
}
_INT_FAMILIES = {"item_counts", "item_daily", "user_counts", "user_seen"}
# Relative tolerance for float counters: the same sums added in another order.
FLOAT_TOLERANCE = 1e-9


def take_shared_log_lock() -> None:
    """Inside the transaction that stores events: a cut waits for it to end."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [LOG_LOCK])


def watermark() -> int:
    """The largest event id, once every transaction storing events has ended: no event
    with an id at or below it can commit later."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOG_LOCK])
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}")
        return int(cursor.fetchone()[0])


@dataclass(frozen=True)
class Cut:
    watermark: int
    unapplied: frozenset[int]  # event ids up to the watermark not counted in Redis
    pending_batches: tuple[int, ...]  # pending rows up to the watermark (applied or not)

    def reflects(self, event_id: int) -> bool:
        return event_id <= self.watermark and event_id not in self.unapplied


def read(client: redis.Redis) -> Cut:
    """The cut the counters reflect now. Call only while holding the counting pause."""
    applied = {int(str(m)) for m in client.zrange(keys.features_applied_batches(), 0, -1)}
    w = watermark()
    unapplied: set[int] = set()
    batches = []
    for batch_id, event_ids in PendingCount.objects.values_list("id", "event_ids"):
        if max(event_ids, default=0) > w:
            continue  # stored after the watermark: outside the cut anyway
        batches.append(batch_id)
        if batch_id not in applied:
            unapplied.update(event_ids)
    return Cut(w, frozenset(unapplied), tuple(sorted(batches)))


_FIELDS = (
    "id",
    "user_id",
    "item_id",
    "event_type",
    "occurred_at",
    "event_id",
    "source",
    "context",
    "received_at",
)


def _row_chunks(*, after: int, upto: int, chunk: int) -> Iterator[list[tuple]]:
    """Rows with ``after < id <= upto`` in id order, a chunk at a time, each stored batch
    whole in one chunk.

    The events of one call (one batch) share ``received_at``. Concurrent inserts take ids
    from the sequence row by row, so two batches stored at once interleave in id order: a
    chunk boundary may fall inside a batch whatever it is aligned to. So each chunk also
    takes the rest of the batches it has begun, from the following windows of ``chunk``
    rows while they hold some (a batch's ids lie within its statement's span; a window
    holding none of it would take ``chunk`` rows of other batches inserted meanwhile), and
    the next chunks skip those rows.
    """
    taken: set[int] = set()
    cursor = after
    while True:
        rows = [
            r
            for r in UserEvent.objects.filter(id__gt=cursor, id__lte=upto)
            .order_by("id")
            .values_list(*_FIELDS)[:chunk]
        ]
        if not rows:
            return
        cursor = rows[-1][0]
        rows = [r for r in rows if r[0] not in taken]
        taken = {i for i in taken if i > cursor}
        if not rows:
            continue
        begun = {r[-1] for r in rows}
        rest: list[tuple] = []
        position = cursor
        while True:  # window after window, as long as the begun batches go on
            ahead = list(
                UserEvent.objects.filter(id__gt=position, id__lte=upto)
                .order_by("id")
                .values_list(*_FIELDS)[:chunk]
            )
            hits = [r for r in ahead if r[-1] in begun and r[0] not in taken]
            if not hits:
                break
            rest.extend(hits)
            taken.update(r[0] for r in hits)
            position = ahead[-1][0]
        yield rows + rest


def stored_chunks(
    *, after: int, upto: int, also: Iterable[int] = (), chunk: int | None = None
) -> Iterator[list[list[EventIn]]]:
    """Events with ``after < id <= upto`` plus the ids in ``also``, as ingestion counted
    them, one list of batches per chunk read: the events of one call share
    ``received_at`` and are one batch (a batch's lists' click rates and seen memory depend
    on what it holds), in the order they were stored (see :func:`_row_chunks`)."""
    extra = sorted(set(also))
    if extra:
        rows = list(UserEvent.objects.filter(id__in=extra).order_by("id").values_list(*_FIELDS))
        yield list(_groups(rows))
    for rows in _row_chunks(after=after, upto=upto, chunk=chunk or REPLAY_BATCH):
        yield list(_groups(rows))


def _groups(rows) -> Iterator[list[EventIn]]:
    groups: dict[datetime, list[EventIn]] = {}
    for _, user_id, item_id, event_type, occurred_at, event_id, source, context, at in rows:
        groups.setdefault(at, []).append(
            EventIn(
                user_id=user_id,
                item_id=item_id,
                event_type=EventType(event_type),
                occurred_at=occurred_at,
                event_id=event_id,
                source=source,
                context=context,
            )
        )
    yield from groups.values()


def family(key: str) -> str | None:
    """The counter family of a feature-store key, or None for bookkeeping keys."""
    parts = key.split(":")
    return parts[2] if len(parts) >= 5 and parts[2] in FAMILIES else None


@dataclass
class Model:
    """The counters a full rebuild from the log would hold (ops applied to dicts)."""

    values: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    ttl: dict[str, int] = field(default_factory=dict)
    # Unix time a key expires at (op ``ea``: day buckets, per-user keys); ``ttl`` holds the
    # same as seconds from when the op was applied.
    expire_at: dict[str, int] = field(default_factory=dict)

    def apply(self, ops: Iterable[counters.Op]) -> None:
        for op, key, name, value in ops:
            if family(key) is None:
                continue
            h = self.values[key]
            if op in ("hi", "hf", "zi"):
                h[name] = h.get(name, 0) + (int(value) if op == "hi" else float(value))
            elif op == "hd":
                h.pop(name, None)
            elif op == "mn":
                if name not in h or float(value) < float(h[name]):
                    h[name] = float(value)
            elif op == "ex":
                self.ttl[key] = int(value)
            elif op == "ea":
                at = max(self.expire_at.get(key, 0), int(value))
                self.expire_at[key] = at
                self.ttl[key] = max(1, at - int(time.time()))


def rebuild(cut: Cut, *, forget: Rules | None = None, base: Model | None = None) -> Model:
    """The counters of exactly the events in ``cut``, computed in memory from the log
    (grouped as ingestion counted them, see :func:`stored_chunks`), less what readers
    asked to forget (``forget``, see ``features_app.forgetting``), counted on top of
    ``base`` (the detached months' baselines, ``features_app.baseline.seed``)."""
    model = base if base is not None else Model()
    skip = cut.unapplied
    for rows in _row_chunks(after=0, upto=cut.watermark, chunk=REPLAY_BATCH):
        kept = [row for row in rows if row[0] not in skip]
        facets = item_facets(list({row[2] for row in kept}))
        for events in _groups(kept):
            model.apply(counters.batch_ops(events, facets, forget=forget))
    return model


def read_redis(client: redis.Redis) -> dict[str, dict[str, float]]:
    """Every counter key of Redis with its fields (hash) or members (sorted set).

    Day buckets of the v1 layout (one hash per day, not yet moved by ``migrate_counters``)
    are added to the v2 buckets their fields belong to: the state is read as v2 only, and a
    repair by difference then writes v2 keys only (a later move adds the v1 values to them,
    which the difference already took into account).
    """
    names = [k for k in client.scan_iter(match=keys.features_pattern(), count=1000) if family(k)]
    state: dict[str, dict[str, float]] = {}
    legacy: list[tuple[int, dict[str, str]]] = []
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        pipe = client.pipeline(transaction=False)
        for name in chunk:
            if family(name) in ("decayed_clicks", "decayed_expected"):
                pipe.zrange(name, 0, -1, withscores=True)
            else:
                pipe.hgetall(name)
        for name, reply in zip(chunk, pipe.execute(), strict=True):
            fam = family(name)
            parsed = keys.item_daily_parse(name) if fam == "item_daily" else None
            if parsed is not None and parsed[1] is None:
                legacy.append((parsed[0], reply))
            elif isinstance(reply, list):
                state[name] = {m: float(s) for m, s in reply}
            elif fam in _INT_FAMILIES:
                state[name] = {f: int(v) for f, v in reply.items()}
            else:
                state[name] = {f: float(v) for f, v in reply.items()}
    for day, fields in legacy:
        for name, value in fields.items():
            bucket = state.setdefault(keys.item_daily(day, int(name.split(":", 1)[0])), {})
            bucket[name] = bucket.get(name, 0) + int(value)
    return state


def same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=FLOAT_TOLERANCE, abs_tol=1e-9)


@dataclass
class FamilyDrift:
    keys: int = 0
    fields: int = 0
    total: float = 0.0


def compare(
    model: dict[str, dict[str, float]],
    redis_state: dict[str, dict[str, float]],
    *,
    keep: Callable[[str], bool] = lambda key: True,
) -> tuple[dict[str, FamilyDrift], set[str]]:
    """Drift per family (keys off, fields off, sum of |difference|) and the keys that
    differ. ``keep`` leaves out keys the rebuild holds but Redis rightly let expire."""
    drift: dict[str, FamilyDrift] = defaultdict(FamilyDrift)
    off: set[str] = set()
    for key in set(model) | set(redis_state):
        if not keep(key):
            continue
        want, have = model.get(key, {}), redis_state.get(key, {})
        fam = FAMILIES[family(key) or ""]
        key_off = False
        for name in set(want) | set(have):
            a, b = want.get(name, 0), have.get(name, 0)
            if not same(float(a), float(b)):
                drift[fam].fields += 1
                drift[fam].total += abs(float(a) - float(b))
                key_off = True
        if key_off:
            drift[fam].keys += 1
            off.add(key)
    return dict(drift), off
