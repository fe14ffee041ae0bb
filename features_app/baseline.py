"""Counts of detached event-log months, kept so lifetime recounts stay right (ADR 0026).

A month detached from ``UserEvent`` leaves every query of the log, the recounts too. Before
it goes, :func:`record` counts its events alone, as ingestion counted them (the stored
batches, ``counters.batch_ops``, with what readers asked to forget then), and stores the
fields whose keys reconciliation keeps: item and user lifetime counts, affinity, seen
memory, first-seen times and the decayed sums of the epochs still read. Day buckets older
than the 28-day window and older epochs are left out (Redis lets them expire anyway).

Every recount then starts from the stored baselines (:func:`ops`, oldest month first) and
counts the attached months on top: the sums and first-seen times come out exactly as if
nothing had been detached; the seen memory too, because a month's baseline says whether it
ended with the memory cleared. Two things are approximations, both documented:

* a stored batch that straddles the month's end (impressions at 23:59 UTC, their click at
  00:00) is counted in two parts, so its list's click rate, and the expected clicks of
  its impressions, are worked out per part (decayed sums of the current epochs only);
* a reader's later request to forget covers a detached month whole or not at all (their
  records cover every event at or before a time, and that time is after the month ends).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from itertools import chain

from django.conf import settings
from django.db import connection

from features_app import counters, cut
from features_app.forgetting import Rules
from features_app.models import CounterBaseline, DetachedMonth
from inbo import keys
from reading_app.public import item_facets

# The families a baseline keeps, and the Redis operation that adds a stored value.
_OP = {
    "item_counts": "hi",
    "user_counts": "hi",
    "user_affinity": "hf",
    "user_seen": "hi",
    "item_first_seen": "mn",
    "decayed_clicks": "zi",
    "decayed_expected": "zi",
}
_USER_FAMILIES = {"user_counts", "user_affinity", "user_seen"}
EXPIRES = ""  # the field of a baseline row that holds the key's expiry time, not a count
READ_CHUNK = 5000
WRITE_CHUNK = 2000


class _MonthModel(cut.Model):
    """``cut.Model`` that also remembers which seen-memory fields a positive action cleared."""

    def __init__(self) -> None:
        super().__init__()
        self.cleared: set[tuple[str, str]] = set()

    def apply(self, ops: Iterable[counters.Op]) -> None:
        ops = list(ops)
        for op, key, name, _ in ops:
            if op == "hd" and cut.family(key) == "user_seen":
                self.cleared.add((key, name))
        super().apply(ops)


def _batches(table: str) -> Iterator[list[tuple]]:
    """The rows of ``table`` (one partition) a stored batch at a time, in the order they
    were stored: ordered by ``received_at`` (shared by a batch's events) then id, so each
    batch is contiguous however concurrent batches interleaved their ids."""
    columns = ", ".join(cut._FIELDS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table} ORDER BY received_at, id")
        batch: list[tuple] = []
        while rows := cursor.fetchmany(READ_CHUNK):
            for row in rows:
                if isinstance(row[7], str):  # jsonb comes back as text from a raw cursor
                    row = (*row[:7], json.loads(row[7]), row[8])
                if batch and row[-1] != batch[-1][-1]:
                    yield batch
                    batch = []
                batch.append(row)
        if batch:
            yield batch


def _kept(key: str, *, now: datetime) -> bool:
    """Keys reconciliation compares (see ``reconcile._keep``): lifetime families always,
    decayed sums of the current and previous epochs."""
    fam = cut.family(key)
    if fam not in _OP:
        return False
    if fam in ("decayed_clicks", "decayed_expected"):
        epoch = counters.click_decay().epoch(now.timestamp())
        return int(key.split(":")[3].rsplit("e", 1)[1]) >= epoch - 1
    return True


def record(source: str, *, table: str, month: date, forget: Rules, now: datetime) -> DetachedMonth:
    """Count the events of partition ``source`` alone and store them as the baseline of
    ``table`` (its name once detached), inside the caller's transaction: the detach that
    follows commits with it, or neither does."""
    model = _MonthModel()
    rows = 0
    low: int | None = None
    high: int | None = None
    pending: list[tuple] = []

    def flush() -> None:
        facets = item_facets(list({row[2] for row in pending}))
        for events in cut._groups(pending):
            model.apply(counters.batch_ops(events, facets, forget=forget))
        pending.clear()

    for batch in _batches(source):
        rows += len(batch)
        ids = [row[0] for row in batch]
        low = min(ids) if low is None else min(low, *ids)
        high = max(ids) if high is None else max(high, *ids)
        pending.extend(batch)
        if len(pending) >= READ_CHUNK:
            flush()
    if pending:
        flush()
    detached = DetachedMonth.objects.create(
        table=table, month=month, rows=rows, min_event_id=low, max_event_id=high, detached_at=now
    )
    fields = [
        CounterBaseline(
            detached=detached,
            key=key,
            field=name,
            value=float(value),
            cleared=(key, name) in model.cleared,
        )
        for key, values in model.values.items()
        if _kept(key, now=now)
        for name, value in values.items()
    ]
    # When the month's events would have a key expire (op ``ea``, where ingestion writes
    # it): field "" holds the Unix time, so a recount that adds the baseline expires the
    # keys of users idle since as ingestion would.
    fields += [
        CounterBaseline(detached=detached, key=key, field=EXPIRES, value=float(at))
        for key, at in getattr(model, "expire_at", {}).items()
        if _kept(key, now=now)
    ]
    # A cleared field with nothing after the clear: the month's memory of it is empty.
    fields += [
        CounterBaseline(detached=detached, key=key, field=name, value=0.0, cleared=True)
        for key, name in sorted(model.cleared)
        if name not in model.values.get(key, {})
    ]
    CounterBaseline.objects.bulk_create(fields, batch_size=WRITE_CHUNK)
    return detached


def _month_end(month: date) -> float:
    following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return datetime(following.year, following.month, 1, tzinfo=UTC).timestamp() - 1e-6


def _forgotten(key: str, name: str, month: date, forget: Rules | None) -> bool:
    """Whether what readers asked to forget since covers this user field of the month."""
    if not forget or cut.family(key) not in _USER_FAMILIES:
        return False
    rule = forget.get(int(key.split(":")[3]))
    if rule is None:
        return False
    last = _month_end(month)
    if rule.all(last):
        return True
    if cut.family(key) == "user_affinity" and name != EXPIRES:
        target = int(name[1:])
        return rule.category(target, last) if name[0] == "c" else rule.provider(target, last)
    return False


def ops(
    *,
    forget: Rules | None = None,
    months: Iterable[DetachedMonth] | None = None,
    keys_like: Iterable[str] | None = None,
) -> Iterator[counters.Op]:
    """The stored baselines as counter writes, oldest month first (a cleared seen field is a
    delete, then its count), less what readers asked to forget since. ``months``: only
    these; ``keys_like``: only these keys."""
    rows = CounterBaseline.objects.select_related("detached").order_by(
        "detached__month", "detached_id", "id"
    )
    if months is not None:
        rows = rows.filter(detached__in=list(months))
    if keys_like is not None:
        rows = rows.filter(key__in=list(keys_like))
    for row in rows.iterator(chunk_size=WRITE_CHUNK):
        fam = cut.family(row.key)
        op = _OP.get(fam or "")
        if op is None or _forgotten(row.key, row.field, row.detached.month, forget):
            continue
        if row.field == EXPIRES:
            yield ("ea", row.key, "", int(row.value))
            continue
        if row.cleared:
            yield ("hd", row.key, row.field, 0)
            if not row.value:
                continue
        value: int | float | str
        if op == "hi":
            value = int(row.value)
        elif op == "mn":
            value = f"{row.value:.3f}"
        else:
            value = row.value
        yield (op, row.key, row.field, value)


def ttl(key: str) -> int | None:
    """The TTL ingestion gives ``key`` (None: none), for keys a baseline alone recreates."""
    fam = cut.family(key)
    if fam in _USER_FAMILIES:
        return counters.user_idle_seconds()
    if fam in ("decayed_clicks", "decayed_expected"):
        return counters.decayed_ttl(counters.click_decay())
    return None


def seed(model: cut.Model, *, forget: Rules | None = None) -> cut.Model:
    """``model`` with every stored baseline applied (before the attached months' replay)."""
    model.apply(ops(forget=forget))
    for key in model.values:
        life = ttl(key)
        if life is not None and key not in getattr(model, "expire_at", {}):
            model.ttl.setdefault(key, life)
    return model


def _queue(
    pipe, writes: Iterable[counters.Op], touched: set[str], expire_at: dict[str, int]
) -> int:
    """Queue the counter writes; collect the keys written and their expiry times."""
    n = 0
    earliest: list[str] = []
    for op, key, name, value in writes:
        n += 1
        if op == "ea":
            expire_at[key] = max(expire_at.get(key, 0), int(value))
            continue
        if op == "hi":
            pipe.hincrby(key, name, int(value))
        elif op == "hf":
            pipe.hincrbyfloat(key, name, float(value))
        elif op == "zi":
            pipe.zincrby(key, float(value), name)
        elif op == "hd":
            pipe.hdel(key, name)
        elif op == "mn":
            earliest.extend((name, str(value)))
        touched.add(key)
    if earliest:
        pipe.eval(counters._KEEP_EARLIEST, 1, keys.item_first_seen(), *earliest)
    return n


def _queue_expiry(pipe, touched: set[str], expire_at: dict[str, int]) -> None:
    # An expiry already past (a user idle since the month) waits for the replay that
    # follows: the user's later events move it on (ingestion's ``ea`` takes the later time),
    # and without any the key goes once the longest job could have ended.
    grace = int(time.time()) + settings.FEATURES_JOB_LOCK_SECONDS
    for key in touched:
        # Never sooner than an expiry the key has (a restored snapshot's, a replay's).
        if key in expire_at:
            at = max(expire_at[key], grace)
            pipe.expireat(key, at, nx=True)
            pipe.expireat(key, at, gt=True)
        elif (life := ttl(key)) is not None:
            pipe.expire(key, life, nx=True)


def apply_all(client, writes: Iterable[counters.Op], *, chunk: int = WRITE_CHUNK) -> int:
    """Apply ``writes`` (``ops``' output) to Redis, ``chunk`` at a time (one pipelined round
    trip each, in order: a cleared seen field's delete comes before its count), then the
    keys' expiry times, once every write of a key is known."""
    n = 0
    touched: set[str] = set()
    expire_at: dict[str, int] = {}
    batch: list[counters.Op] = []
    for write in chain(writes, [None]):
        if write is not None:
            batch.append(write)
        if batch and (write is None or len(batch) >= chunk):
            pipe = client.pipeline(transaction=False)
            n += _queue(pipe, batch, touched, expire_at)
            pipe.execute()
            batch = []
    keys_ = sorted(touched)
    for start in range(0, len(keys_), chunk):
        pipe = client.pipeline(transaction=False)
        _queue_expiry(pipe, set(keys_[start : start + chunk]), expire_at)
        pipe.execute()
    return n


def item_counts(item_ids: Iterable[int]) -> dict[int, dict[str, float]]:
    """Lifetime counts per item of the detached months (``dwell_ms`` included), and the
    earliest impression time as ``first_seen`` (Unix time): for the degraded path."""
    wanted = {keys.item_counts(i): i for i in item_ids}
    out: dict[int, dict[str, float]] = {}
    if not wanted:
        return out
    for key, name, value in CounterBaseline.objects.filter(key__in=list(wanted)).values_list(
        "key", "field", "value"
    ):
        mine = out.setdefault(wanted[key], {})
        mine[name] = mine.get(name, 0.0) + value
    fields = [str(i) for i in wanted.values()]
    for name, value in CounterBaseline.objects.filter(
        key=keys.item_first_seen(), field__in=fields
    ).values_list("field", "value"):
        mine = out.setdefault(int(name), {})
        mine["first_seen"] = min(mine.get("first_seen", math.inf), value)
    return out


def detached_tables() -> set[str]:
    """The detached tables whose baselines are stored."""
    return set(DetachedMonth.objects.values_list("table", flat=True))


def covered_by(watermark: int, unapplied: Iterable[int]) -> tuple[list, list, list]:
    """The detached months in a cut ``{id <= watermark} - unapplied`` (a snapshot's), those
    wholly outside it, and those partly in it: ``(inside, outside, straddling)``."""
    skipped = sorted(set(unapplied))
    inside, outside, straddling = [], [], []
    for month in DetachedMonth.objects.order_by("month", "id"):
        if month.rows == 0 or month.min_event_id is None:
            inside.append(month)
        elif month.min_event_id > watermark:
            outside.append(month)
        elif (
            month.max_event_id is not None
            and month.max_event_id <= watermark
            and not any(month.min_event_id <= i <= month.max_event_id for i in skipped)
        ):
            inside.append(month)
        else:
            straddling.append(month)
    return inside, outside, straddling
