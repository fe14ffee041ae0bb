"""``manage.py features_memory_report``: Redis bytes per item and per user, two layouts."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from features_app.memory_report import (
    ITEM_THINGS,
    USER_THINGS,
    LayoutFigures,
    MemoryReport,
    MemoryReportError,
    memory_report,
)


def _mb(n: float) -> str:
    return f"{n / 1_000_000:,.1f} MB"


class Command(BaseCommand):
    """Measure the feature store's Redis memory: the shipped layout against a naive one."""

    help = (
        "Build the feature-store counters of a synthetic world (--items, --users, four "
        "weeks of activity) in a scratch Redis database twice: with the real "
        "counters.apply_events (the shipped compact layout: hashes and sorted sets) and "
        "with one string key per counter (naive). Prints INFO memory used_memory deltas and "
        "MEMORY USAGE figures: bytes per item and per user for both, and their ratio. The "
        "scratch database (--redis-url, default REDIS_EVAL_URL) is FLUSHED before and "
        "after; the state, cache and broker databases are refused. Needs no PostgreSQL data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--items", type=int, default=100_000)
        parser.add_argument("--users", type=int, default=10_000)
        parser.add_argument("--days", type=int, default=28, help="Days of activity (28).")
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--redis-url",
            default=None,
            help="Scratch database, flushed before and after (default: REDIS_EVAL_URL).",
        )

    def handle(
        self,
        *args,
        items: int,
        users: int,
        days: int,
        seed: int,
        redis_url: str | None,
        **options,
    ) -> None:
        if items < 1 or users < 1 or days < 1:
            raise CommandError("--items, --users and --days must be at least 1")
        url = redis_url or settings.REDIS_EVAL_URL
        try:
            report = memory_report(
                url=url,
                items=items,
                users=users,
                days=days,
                seed=seed,
                progress=lambda message: self.stderr.write(f"  {message}"),
            )
        except MemoryReportError as exc:
            raise CommandError(str(exc)) from None
        self._print(report)

    def _print(self, r: MemoryReport) -> None:
        out = self.stdout.write
        s = r.server
        out(
            f"Feature store memory: {r.items:,} items, {r.users:,} users "
            f"({r.items_with_counters:,} items and {r.users_with_counters:,} users have "
            f"counters), {sum(r.events.values()):,} events, {r.seconds:.0f}s"
        )
        out("  events: " + ", ".join(f"{k} {v:,}" for k, v in r.events.most_common()))
        out(
            f"  Redis {s['redis_version']}: hash-max-listpack-entries "
            f"{s.get('hash-max-listpack-entries')}, hash-max-listpack-value "
            f"{s.get('hash-max-listpack-value')}, zset-max-listpack-entries "
            f"{s.get('zset-max-listpack-entries')}, set-max-intset-entries "
            f"{s.get('set-max-intset-entries')}, maxmemory {s.get('maxmemory')} "
            f"({s.get('maxmemory-policy')})"
        )
        c, n = r.compact, r.naive
        out("")
        out(f"  {'':<34}{'compact (shipped)':>20}{'naive (key/counter)':>22}{'naive/compact':>15}")

        def row(label: str, a: float, b: float, fmt=lambda v: f"{v:,.0f}") -> None:
            ratio = f"{b / a:.1f}x" if a else "-"
            out(f"  {label:<34}{fmt(a):>20}{fmt(b):>22}{ratio:>15}")

        row("keys", c.keys, n.keys)
        row("used_memory delta (INFO memory)", c.used_memory, n.used_memory, _mb)
        row("MEMORY USAGE, item side", c.side(ITEM_THINGS), n.side(ITEM_THINGS), _mb)
        row("MEMORY USAGE, user side", c.side(USER_THINGS), n.side(USER_THINGS), _mb)
        row("not seen by MEMORY USAGE, per key", c.overhead_per_key, n.overhead_per_key)
        row("bytes per item (all in)", c.per_item, n.per_item)
        row("bytes per user (all in)", c.per_user, n.per_user)
        for layout in (c, n):
            self._kinds(layout)
        if r.daily is not None:
            self._daily(r)
        out("")
        out("  what if (not shipped): item-side hashes regrouped by block of item ids, so that")
        out("  each hash stays within hash-max-listpack-entries (a listpack, not a hashtable)")
        for w in r.what_if:
            saved = w.bytes_before - w.bytes_after
            out(
                f"    {w.thing:<16} {w.keys_before:>7,} keys {_mb(w.bytes_before):>9} -> "
                f"{w.keys_after:>7,} hashes of {w.block} items {_mb(w.bytes_after):>9}: "
                f"saves {_mb(saved)} ({saved / max(1, c.used_memory):.0%} of compact), "
                f"{saved / max(1, r.items_with_counters):,.0f} B per item"
            )
        out("")
        for line in (
            "'all in': the side's MEMORY USAGE plus its keys' share of what MEMORY USAGE",
            "does not see (main dictionary buckets, expiry entries, allocator rounding), so",
            "items and users add up to the used_memory delta. Naive MEMORY USAGE is",
            "extrapolated from a random sample of each kind of key; compact is exact.",
        ):
            out(f"  {line}")

    def _daily(self, r: MemoryReport) -> None:
        out, d = self.stdout.write, r.daily
        assert d is not None

        def encodings(found: dict[str, int]) -> str:
            return ", ".join(f"{e} {n:,}" for e, n in sorted(found.items()))

        out("")
        out("  day buckets before and after manage.py migrate_counters (same fields):")
        out(
            f"    v1 (a hash per day)           {d.v1_keys:>9,} keys {_mb(d.v1_bytes):>10}  "
            f"{encodings(d.v1_encodings)}"
        )
        out(
            f"    v2 (a hash per day and block) {d.v2_keys:>9,} keys {_mb(d.v2_bytes):>10}  "
            f"{encodings(d.v2_encodings)}"
        )
        out(
            f"    migrate_counters moved {d.moved:,} of {d.fields:,} fields in {d.seconds:.1f}s; "
            f"the result is {'identical to' if d.identical else 'DIFFERENT from'} what "
            "counting writes"
        )
        before, after = r.per_item_with_v1_days(), r.compact.per_item
        out(
            f"    bytes per item (all in): {before:,.0f} before -> {after:,.0f} after "
            f"({(after - before) / max(1, before):+.0%}); bytes per user: "
            f"{r.compact.per_user:,.0f} (the day buckets are item-side)"
        )

    def _kinds(self, layout: LayoutFigures) -> None:
        out = self.stdout.write
        out("")
        header = f"{'kind':<18}{'keys':>11}{'fields':>11}{'bytes':>14}{'B/field':>9}  encodings"
        out(f"  {layout.name}: {header}")
        for thing in (*ITEM_THINGS, *USER_THINGS):
            k = layout.kinds.get(thing)
            if k is None:
                continue
            per_field = k.bytes / k.fields if k.fields else 0
            encodings = ", ".join(f"{e} {v:,}" for e, v in k.encodings.most_common())
            out(
                f"  {'':<{len(layout.name) + 2}}{thing:<18}{k.keys:>11,}{k.fields:>11,}"
                f"{k.bytes:>14,}{per_field:>9.1f}  {encodings}"
            )
