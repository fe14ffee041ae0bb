"""What readers asked the feature store to forget, and how a recount honours it.

The records live with the reader (experience_app: a removed interest, a reset); this app
cannot import them, so the owner subscribes a *source* once, in ``AppConfig.ready``
(``features_app.public.subscribe_forgetting``), as reading_app's listeners are subscribed.
Whoever counts a user's taste from the log asks :func:`rules` and passes the result to
``counters.batch_ops``: the recount of reconcile and restore, the user embeddings and the
PostgreSQL fallback then leave the forgotten contributions out, so a removed interest does
not come back. Ingestion counts without rules (one query per batch saved): an event from
before a removal that arrives after it (an offline client, a pending batch) counts until
the next reconcile takes it out again.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

import redis

from features_app.contracts import Forgetting
from features_app.models import UserEmbedding
from inbo import keys
from inbo import redis as inbo_redis

# ``source(user_ids)``: the Forgetting records of those users (None: of every user).
ForgettingSource = Callable[[Collection[int] | None], Iterable[Forgetting]]
_sources: list[ForgettingSource] = []

_NEVER = -math.inf


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
