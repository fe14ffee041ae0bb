"""Write the generated demo world (``experience_app.datasets.demo``) to the database.

Bulk writes only, through the reading_app and features_app facades. Idempotent: every
row has a stable key (``demo:provider:<n>``, ``demo:item:<n>``, ``demo_user_<n>``, uuid5
event ids), and the world's clock is recovered from the first demo item when it already
exists, so running again with the same arguments creates nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import IO

from django.core.management.base import OutputWrapper
from django.utils import timezone

from experience_app.datasets import demo as plan
from experience_app.services.progress_bars import bar
from experience_app.services.users import users_ensure
from features_app.public import EventIn, events_ingest
from reading_app.public import (
    ReadingProgressIn,
    SavedItemIn,
    SubscriptionIn,
    categories_create_missing,
    items_create_missing,
    items_published_at,
    providers_create_missing,
    reading_progress_bulk_create,
    saved_items_bulk_create,
    subscriptions_bulk_create,
)

PRESETS: dict[str, dict[str, int]] = {
    "small": {"users": 20, "providers": 15, "items": 200},  # tests and quick looks
    "default": {"users": 200, "providers": 300, "items": 6000},
}
DEFAULT_DAYS = 60
DEFAULT_SEED = 42
ITEM_BATCH = 1000
EVENT_BATCH = 10_000

Counts = dict[str, dict[str, int]]


def _count(requested: int, created: int) -> dict[str, int]:
    return {"created": created, "existing": requested - created}


def anchor_for(*, seed: int, days: int, items: int) -> datetime:
    """The world's "now": the current minute on the first run, afterwards recovered from
    the stored first item (its publication time plus its generated age), never later than
    the current time."""
    now = timezone.now().replace(second=0, microsecond=0)
    if items < 1:
        return now
    first = plan.item_external_id(1)
    stored = items_published_at([first]).get(first)
    if stored is None:
        return now
    return min(stored + plan.item_offset(seed, 1, days), now)


def seed_demo(
    *,
    users: int = PRESETS["default"]["users"],
    providers: int = PRESETS["default"]["providers"],
    items: int = PRESETS["default"]["items"],
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    stdout: IO[str] | OutputWrapper | None = None,
) -> Counts:
    """Create the demo world: categories, providers, items over the last ``days`` days,
    users ``demo_user_<n>`` with subscriptions, reading progress, saved items and an
    interaction history (events of source ``demo``).

    Deterministic for a ``seed``; what exists is left as it is. ``stdout`` shows progress
    bars when it is a terminal. Returns ``{kind: {"created": n, "existing": m}}``.
    ``PRESETS["small"]`` is the size for tests.
    """
    counts: Counts = {}
    anchor = anchor_for(seed=seed, days=days, items=items)
    steps = bar(stream=stdout, desc="demo world", total=8, unit="step")

    categories = plan.categories()
    counts["categories"] = _count(len(categories), categories_create_missing(categories).created)
    steps.update()

    provider_plan = plan.providers(seed, providers)
    result = providers_create_missing([p.spec for p in provider_plan])
    provider_ids = result.ids
    counts["providers"] = _count(len(provider_plan), result.created)
    steps.update()

    item_plan = plan.items(seed, items, provider_plan, days, anchor)
    item_ids: dict[str, int] = {}
    created = 0
    for start in bar(range(0, len(item_plan), ITEM_BATCH), stream=stdout, desc="items"):
        result = items_create_missing([i.spec for i in item_plan[start : start + ITEM_BATCH]])
        item_ids.update(result.ids)
        created += result.created
    counts["items"] = _count(len(item_plan), created)
    steps.update()

    user_plan = plan.users(seed, users, days, anchor)
    user_ids, created = users_ensure(
        [u.username for u in user_plan], joined={u.username: u.joined for u in user_plan}
    )
    counts["users"] = _count(len(user_plan), created)
    steps.update()

    activity = plan.activity(seed, user_plan, provider_plan, item_plan, anchor, days)
    steps.update()
    subscriptions = [
        SubscriptionIn(user_ids[u], provider_ids[p], status, at)
        for u, p, status, at in activity.subscriptions
    ]
    result_bulk = subscriptions_bulk_create(subscriptions)
    counts["subscriptions"] = _count(len(subscriptions), result_bulk.created)
    steps.update()

    progress = [
        ReadingProgressIn(
            user_id=user_ids[p.username],
            item_id=item_ids[p.item],
            progress=p.progress,
            position=p.position,
            started_at=p.started_at,
            updated_at=p.updated_at,
            completed_at=p.completed_at,
        )
        for p in activity.progress
    ]
    counts["reading_progress"] = _count(
        len(progress), reading_progress_bulk_create(progress).created
    )
    saves = [SavedItemIn(user_ids[u], item_ids[i], at) for u, i, at in activity.saves]
    counts["saved_items"] = _count(len(saves), saved_items_bulk_create(saves).created)
    steps.update()

    counts["events"] = _record_events(activity.events, user_ids, item_ids, stdout)
    steps.update()
    steps.close()
    return counts


def _record_events(
    events: Sequence[plan.DemoEvent],
    user_ids: dict[str, int],
    item_ids: dict[str, int],
    stdout: IO[str] | OutputWrapper | None,
) -> dict[str, int]:
    created = 0
    for start in bar(range(0, len(events), EVENT_BATCH), stream=stdout, desc="events"):
        batch = [
            EventIn(
                user_id=user_ids[e.username],
                item_id=item_ids[e.item],
                event_type=e.event_type,
                occurred_at=e.occurred_at,
                event_id=e.event_id,
                source=plan.SOURCE,
                context=e.context,
            )
            for e in events[start : start + EVENT_BATCH]
        ]
        created += events_ingest(batch).created
    return _count(len(events), created)
