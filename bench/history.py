"""The generated interaction history: sessions of ten items shown together.

Clicks depend on the user's favourite topics, the item's quality and the user's
subscriptions; clicks become reads, saves and shares, some impressions dismissals and
hides. Each interaction is written both as an ``ExperienceInteraction`` and as a
``UserEvent`` with the same ``event_id``; reading progress and saved items follow.
"""

from __future__ import annotations

import bisect
import time
import uuid

from bench.common import Progress, say
from bench.rows import NULL, copy_ts, cumulative, weighted_in

SOURCE = "bench"
LIST_SIZE = 10  # items shown per generated session
# Where a session's items come from, and from how far back.
RECENT_WINDOWS = ((2 * 86400, 0.6), (10 * 86400, 0.4))
EVENTS_PER_SESSION = 11.0  # what the click model below gives on average
EVENT_COLUMNS = "user_id, item_id, event_type, occurred_at, received_at, event_id, source, context"
INTERACTION_COLUMNS = (
    "user_id, item_id, interaction_type, section, position, request_id, event_id, "
    "occurred_at, received_at, dwell_ms"
)
PROGRESS_COLUMNS = "user_id, item_id, progress, position, started_at, updated_at, completed_at"


def seed_history(
    world, rng, conn, copier, t, cat, user_ids, favourites, activity, subscriptions, start, anchor
) -> dict[str, int]:
    """Sessions of ten items shown together, clicked by taste, quality and subscription;
    clicks become reads, saves and shares, some impressions dismissals. Each interaction is
    written both as an ExperienceInteraction and as a UserEvent with the same event_id."""
    began = time.monotonic()
    user_cum = cumulative(activity)
    last = anchor - 1
    mean_quality = sum(cat.quality) / max(len(cat.quality), 1)
    progress_rows: dict[tuple[int, int], tuple] = {}
    saves: dict[tuple[int, int], float] = {}
    negative: set[tuple[int, int]] = set()
    written = sessions_done = 0
    progress = Progress("events", world.events)

    def emit(uid, item, kind, at, request, position, dwell=None):
        nonlocal written
        at = min(at, last)
        stamp = copy_ts(at)
        received = stamp  # received as it happened: the world has no offline clients
        event_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        context = f'{{"request_id": "{request}", "section": "for_you", "position": {position}'
        context += f', "dwell_ms": {dwell}}}' if dwell is not None else "}"
        copier.add(
            t["event"],
            EVENT_COLUMNS,
            f"{uid}\t{item}\t{kind}\t{stamp}\t{received}\t{event_id}\t{SOURCE}\t{context}\n",
        )
        copier.add(
            t["interaction"],
            INTERACTION_COLUMNS,
            f"{uid}\t{item}\t{kind}\tfor_you\t{position}\t{request}\t{event_id}\t{stamp}\t"
            f"{received}\t{dwell if dwell is not None else NULL}\n",
        )
        written += 1

    while written < world.events:
        remaining = world.events - written
        planned = max(200, int(remaining / EVENTS_PER_SESSION * 1.02))
        sessions = sorted(
            (rng.uniform(start, last), weighted_in(user_cum, 0, world.users, rng) or 0)
            for _ in range(planned)
        )
        for ts, u in sessions:
            uid = user_ids[u + 1]
            favs, subs = favourites[u], subscriptions[u]
            span = (
                RECENT_WINDOWS[0][0]
                if rng.random() < RECENT_WINDOWS[0][1]
                else RECENT_WINDOWS[1][0]
            )
            lo, hi = bisect.bisect_left(cat.ts, ts - span), bisect.bisect_right(cat.ts, ts)
            if hi - lo < LIST_SIZE * 3:
                continue
            shown: list[int] = []
            for _ in range(LIST_SIZE * 3):
                if len(shown) >= LIST_SIZE:
                    break
                r = rng.random()
                index = None
                if r < 0.45 and favs:
                    s = rng.choice(favs)
                    a = bisect.bisect_left(cat.section_ts[s], ts - span)
                    b = bisect.bisect_right(cat.section_ts[s], ts)
                    k = weighted_in(cat.section_cum[s], a, b, rng)
                    index = cat.by_section[s][k] if k is not None else None
                elif r < 0.6 and subs:
                    p = rng.choice(subs)
                    a = bisect.bisect_left(cat.provider_ts[p], ts - span)
                    b = bisect.bisect_right(cat.provider_ts[p], ts)
                    if b > a:
                        index = cat.by_provider[p][rng.randrange(a, b)]
                if index is None:
                    index = weighted_in(cat.cum, lo, hi, rng)
                if (
                    index is None
                    or index in shown
                    or cat.quality[index] <= 0
                    or (uid, cat.ids[index]) in negative
                ):
                    continue
                shown.append(index)
            request = uuid.UUID(int=rng.getrandbits(128), version=4)
            for position, index in enumerate(shown):
                item = cat.ids[index]
                at = ts + position * 0.3
                emit(uid, item, "impression", at, request, position)
                chance = 0.035 * min(cat.quality[index] / mean_quality, 4.0)
                chance *= 3.0 if cat.section[index] in favs else 0.6
                chance *= 1.5 if cat.provider[index] in subs else 1.0
                if rng.random() < min(chance, 0.6):
                    clicked = at + 2 + rng.expovariate(1 / 30)
                    emit(uid, item, "click", clicked, request, position)
                    key = (uid, item)
                    if rng.random() < 0.45:
                        dwell = int(cat.minutes[index] * 60_000 * rng.uniform(0.6, 1.2))
                        done = clicked + dwell / 1000
                        emit(uid, item, "read", done, request, position, dwell)
                        progress_rows[key] = (1.0, 10_000, clicked, min(done, last), done)
                    elif key not in progress_rows or progress_rows[key][4] is None:
                        share = rng.uniform(0.05, 0.9)
                        touched = clicked + rng.uniform(10, 600)
                        progress_rows[key] = (
                            share,
                            int(share * 10_000),
                            clicked,
                            min(touched, last),
                            None,
                        )
                    if rng.random() < 0.06:
                        emit(uid, item, "save", clicked + 5, request, position)
                        saves.setdefault(key, min(clicked + 5, last))
                    if rng.random() < 0.01:
                        emit(uid, item, "share", clicked + 8, request, position)
                elif rng.random() < 0.012:
                    emit(uid, item, "dismiss", at + 1, request, position)
                    negative.add((uid, item))
                elif rng.random() < 0.002:
                    emit(uid, item, "hide", at + 1, request, position)
                    negative.add((uid, item))
            sessions_done += 1
            progress.update(written)
            if written >= world.events:
                break
    copier.flush()
    progress.update(written, force=True)
    say(f"events: {written:,} in {sessions_done:,} sessions, {time.monotonic() - began:.1f}s")

    began = time.monotonic()
    for (uid, item), (share, position, started, updated, completed) in progress_rows.items():
        done = copy_ts(completed) if completed is not None else NULL
        copier.add(
            t["progress"],
            PROGRESS_COLUMNS,
            f"{uid}\t{item}\t{share:.4f}\t{position}\t{copy_ts(started)}\t{copy_ts(updated)}\t{done}\n",
        )
    for (uid, item), at in saves.items():
        copier.add(t["saved"], "user_id, item_id, created_at", f"{uid}\t{item}\t{copy_ts(at)}\n")
    copier.flush()
    say(
        f"reading progress: {len(progress_rows):,}, saved: {len(saves):,}"
        f" in {time.monotonic() - began:.1f}s"
    )
    return {
        "events": written,
        "interactions": written,
        "sessions": sessions_done,
        "reading_progress": len(progress_rows),
        "saved_items": len(saves),
    }
