"""What readers asked the feature store to forget, and how a recount honours it.

The records live with the reader (experience_app: a removed interest, a reset); this app
cannot import them, so the owner subscribes a *source* once, in ``AppConfig.ready``
(``features_app.public.subscribe_forgetting``), as reading_app's listeners are subscribed.
Whoever counts a user's taste from the log asks :func:`rules` and passes the result to
``counters.batch_ops``: the recount of reconcile and restore, the user embeddings and the
PostgreSQL fallback then leave the forgotten contributions out, so a removed interest does
not come back. Readers of the raw log filter it in SQL instead: :func:`remembered` (ALS,
through ``public.events_between(remembered=True)``) and the segments' interest clusters
(``segments._AFFINITY_RULED``). Ingestion counts without rules (one query per batch
saved): an event from before a removal that arrives after it (an offline client, a
pending batch) counts until the next reconcile takes it out again.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from django.db import connection
from django.db.models import BooleanField, QuerySet
from django.db.models.expressions import RawSQL

from features_app.contracts import Forgetting
from features_app.models import UserEmbedding, UserEvent
from inbo import keys
from inbo import redis as inbo_redis
from reading_app.public import item_facets

# ``source(user_ids)``: the Forgetting records of those users (None: of every user).
ForgettingSource = Callable[[Collection[int] | None], Iterable[Forgetting]]
_sources: list[ForgettingSource] = []

_NEVER = -math.inf
FACETS_BATCH = 5000


@dataclass(frozen=True, slots=True)
class UserForgetting:
    """One user's records, as Unix times: an event at or before a time is forgotten."""

    everything: float = _NEVER
    categories: Mapping[int, float] = field(default_factory=dict)
    providers: Mapping[int, float] = field(default_factory=dict)

    def category(self, category_id: int, ts: float) -> bool:
        """Whether the event at ``ts`` no longer counts towards ``category_id``."""
        return ts <= max(self.everything, self.categories.get(category_id, _NEVER))

    def provider(self, provider_id: int, ts: float) -> bool:
        return ts <= max(self.everything, self.providers.get(provider_id, _NEVER))

    def all(self, ts: float) -> bool:
        """Whether the event at ``ts`` is forgotten whole (counts and seen memory too)."""
        return ts <= self.everything


Rules = Mapping[int, UserForgetting]


def subscribe(source: ForgettingSource) -> None:
    if source not in _sources:
        _sources.append(source)


def unsubscribe(source: ForgettingSource) -> None:
    if source in _sources:
        _sources.remove(source)


def compile_rules(records: Iterable[Forgetting]) -> dict[int, UserForgetting]:
    """Records grouped by user, the latest time of each target kept."""
    everything: dict[int, float] = defaultdict(lambda: _NEVER)
    categories: dict[int, dict[int, float]] = defaultdict(dict)
    providers: dict[int, dict[int, float]] = defaultdict(dict)
    users: set[int] = set()
    for r in records:
        ts = r.before.timestamp()
        users.add(r.user_id)
        if r.everything:
            everything[r.user_id] = max(everything[r.user_id], ts)
        if r.category_id is not None:
            mine = categories[r.user_id]
            mine[r.category_id] = max(mine.get(r.category_id, _NEVER), ts)
        if r.provider_id is not None:
            theirs = providers[r.user_id]
            theirs[r.provider_id] = max(theirs.get(r.provider_id, _NEVER), ts)
    return {
        u: UserForgetting(everything[u], dict(categories[u]), dict(providers[u])) for u in users
    }


def rules(user_ids: Collection[int] | None = None) -> dict[int, UserForgetting]:
    """The rules of ``user_ids`` (None: every user), from every subscribed source."""
    if user_ids is not None and not user_ids:
        return {}
    return compile_rules(r for source in _sources for r in source(user_ids))


def at(ts: float) -> datetime:
    """A rule's time as the datetime it was recorded at (microseconds survive the float)."""
    return datetime.fromtimestamp(ts, UTC)


# Kept: events after their user's reset and after the latest removal that covers their
# (user, item) (the item's provider or one of its categories). The times travel as two JSON
# objects, {user: time} and {user: {item: time}}, looked up per row (a binary search over
# the keys): a cost that does not depend on the plan the estimates lead to, where an anti
# join against arrays turned into a nested loop on an unanalysed table.
_REMEMBERED = """{t}.occurred_at > COALESCE(
    GREATEST((%s::jsonb ->> {t}.user_id::text)::timestamptz,
             (%s::jsonb -> ({t}.user_id::text) ->> ({t}.item_id::text))::timestamptz),
    '-infinity'::timestamptz)"""


def remembered(
    events: QuerySet[UserEvent],
    *,
    since: datetime,
    until: datetime,
    user_ids: Collection[int] | None = None,
) -> QuerySet[UserEvent]:
    """``events`` (of ``[since, until)``, of ``user_ids`` when given) less what readers
    asked to forget, filtered in SQL: whatever a reset covers, and each event on an item
    whose provider or one of whose categories the reader removed later (an event counts
    whole or not at all, for readers of the log that learn from the (user, item) pair: ALS).

    One query finds the items the readers with a removal touched in the window; their
    facets come in batches; the times travel as JSON (``_REMEMBERED``)."""
    forget = rules(user_ids)
    if not forget:
        return events
    resets = {u: r.everything for u, r in forget.items() if r.everything > _NEVER}
    partial = [u for u, r in forget.items() if r.categories or r.providers]
    pairs: list[tuple[int, int, float]] = []
    if partial:
        touched = list(
            UserEvent.objects.filter(
                user_id__in=partial, occurred_at__gte=since, occurred_at__lt=until
            )
            .order_by()
            .values_list("user_id", "item_id")
            .distinct()
        )
        items = sorted({i for _, i in touched})
        facets = {}
        for start in range(0, len(items), FACETS_BATCH):
            facets.update(item_facets(items[start : start + FACETS_BATCH]))
        for user_id, item_id in touched:
            rule, facet = forget[user_id], facets.get(item_id)
            if facet is None:
                continue
            before = max(
                (rule.categories.get(c, _NEVER) for c in facet.category_ids),
                default=_NEVER,
            )
            before = max(before, rule.providers.get(facet.provider_id, _NEVER))
            if before > rule.everything:  # else the reset covers it already
                pairs.append((user_id, item_id, before))
    if not resets and not pairs:
        return events
    by_pair: dict[str, dict[str, str]] = defaultdict(dict)
    for user_id, item_id, before in pairs:
        by_pair[str(user_id)][str(item_id)] = at(before).isoformat()
    by_user = {str(u): at(ts).isoformat() for u, ts in resets.items()}
    table = connection.ops.quote_name(UserEvent._meta.db_table)
    return events.filter(
        RawSQL(
            _REMEMBERED.format(t=table),
            (json.dumps(by_user), json.dumps(by_pair)),
            output_field=BooleanField(),
        )
    )


def forget_now(record: Forgetting) -> bool:
    """Take from Redis now what ``record`` forgets (the recount keeps it out later): the
    category's or provider's affinity field, or for a reset the user's affinity, seen
    memory, event counts, reading hours, session in progress and learned candidates, and
    their stored user embedding. False when Redis is away (the next reconcile takes it out)."""
    user_id = record.user_id
    if record.everything:
        UserEmbedding.objects.filter(user_id=user_id).delete()
    try:
        client = inbo_redis.state()
        if record.everything:
            client.delete(
                keys.user_affinity(user_id),
                keys.user_seen(user_id),
                keys.user_counts(user_id),
                keys.user_hours(user_id),  # their reading hours (issue 13, time signals)
                keys.session_current(user_id),  # their session in progress (up_next)
                *(keys.learned_candidates(source, user_id) for source in keys.LEARNED_SOURCES),
            )
        else:
            fields = []
            if record.category_id is not None:
                fields.append(f"c{record.category_id}")
            if record.provider_id is not None:
                fields.append(f"p{record.provider_id}")
            client.hdel(keys.user_affinity(user_id), *fields)
    except redis.RedisError:
        return False
    return True
