"""Database router of the read replicas (ADR 0025; installed when DATABASE_REPLICA_URLS is set).

Writes always go to the primary. A read goes to a replica only inside a lag-tolerant call
(``inbo.replicas.lag_tolerant``), which has chosen the replica, and only while the primary
has no open transaction; every other read, related objects of rows read from a replica
included, goes to the primary.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS

from inbo import replicas


class ReplicaRouter:
    def db_for_read(self, model: type, **hints: Any) -> str:
        return replicas.read_alias()

    def db_for_write(self, model: type, **hints: Any) -> str:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        # A replica holds the primary's rows: objects read from either may be related.
        dbs = {obj1._state.db, obj2._state.db}
        if dbs <= {DEFAULT_DB_ALIAS, *replicas.replica_aliases()}:
            return True
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # Replicas are read-only copies: migrations run on the primary and stream over.
        return False if replicas.is_replica(db) else None
