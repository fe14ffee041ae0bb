"""Co-reading: the items a given item's recent readers also engaged with, and the item a
user engaged with last (the anchor the home's "related" section starts from).

On the normal path of every home request, Redis up or down: the query reads the event log
in PostgreSQL, and its answer is shared through Redis for ten minutes by every user whose
anchor is the same item. (The degraded-mode signals are in ``features_app/fallback.py``.)
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime

import redis
from django.db import connection, connections, transaction

from features_app.contracts import POSITIVE_TYPES
from features_app.models import UserEvent
from inbo import keys
from inbo import redis as inbo_redis
from inbo.replicas import read_alias

# Readers' recent engagements through the (user_id, occurred_at) index, one small lookup
# per reader (LATERAL): a join over the whole window would scan the partition.
_CO_READ = f"""
WITH readers AS (
    SELECT DISTINCT user_id FROM {UserEvent._meta.db_table}
    WHERE item_id = %(item)s AND event_type IN ('click', 'read', 'save')
      AND occurred_at > %(since)s
    LIMIT %(readers)s
)
SELECT x.item_id, count(DISTINCT x.user_id) AS n
FROM readers r CROSS JOIN LATERAL (
    SELECT e.item_id, e.user_id FROM {UserEvent._meta.db_table} e
    WHERE e.user_id = r.user_id AND e.event_type IN ('click', 'read', 'save')
      AND e.occurred_at > %(since)s
    ORDER BY e.occurred_at DESC
    LIMIT %(per_reader)s
) x
WHERE x.item_id <> %(item)s
GROUP BY x.item_id
ORDER BY n DESC, x.item_id DESC
LIMIT %(limit)s
"""


def co_read(item_id: int, *, since: datetime, limit: int) -> list[int]:
    """Items most often engaged with by recent readers of ``item_id``, kept in Redis for ten
    minutes; straight from PostgreSQL when Redis is unreachable."""
    key = keys.co_read(item_id)
    try:
        cached = inbo_redis.state().get(key)
    except redis.RedisError:
        return co_read_from_log(item_id, since=since, limit=limit)
    if cached is not None:
        return [int(i) for i in json.loads(cached)][:limit]
    found = co_read_from_log(item_id, since=since, limit=limit)
    with contextlib.suppress(redis.RedisError):
        inbo_redis.state().set(key, json.dumps(found), ex=keys.CO_READ_TTL_SECONDS)
    return found


def co_read_from_log(item_id: int, *, since: datetime, limit: int, readers: int = 50) -> list[int]:
    """Items most often engaged with by the (recent) readers of ``item_id``, by SQL."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Tiny per-reader lookups: starting parallel workers would cost more than the query.
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        cursor.execute(
            _CO_READ,
            {
                "item": item_id,
                "since": since,
                "readers": readers,
                "per_reader": 100,
                "limit": limit,
            },
        )
        return [row[0] for row in cursor.fetchall()]


# The statement the ORM wrote, in plain SQL: a feed build reads it (the types are constants).
_LAST_ENGAGED = (
    f"SELECT item_id FROM {UserEvent._meta.db_table} WHERE event_type IN "
    f"({', '.join(sorted(repr(str(t.value)) for t in POSITIVE_TYPES))}) "
    "AND occurred_at > %s AND user_id = %s ORDER BY occurred_at DESC, id DESC LIMIT 1"
)


def last_engaged_item_id(user_id: int, *, since: datetime) -> int | None:
    """The item the user most recently clicked, read or saved."""
    with connections[read_alias()].cursor() as cursor:  # where the ORM would read
        cursor.execute(_LAST_ENGAGED, [since, user_id])
        row = cursor.fetchone()
    return row[0] if row is not None else None
