"""The rules_app facade: what the feed build calls (experience_app sits above rules_app).

Every function reads the process's rules (``rules_app.snapshot``: loaded once, reloaded
when their version moves) and costs nothing when there are none.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rules_app import engine, memo, services, snapshot
from rules_app.engine import S, Scored, T


def campaign_item_ids(now: datetime) -> list[int]:
    """Items of the sponsored campaigns running at ``now``: the feed makes them candidates
    (in process; no query but the version check)."""
    rules = snapshot.current(now)
    return [i for c in rules.campaigns if c.window.holds(now) for i in c.item_ids]


def adjust_ranked(
    ranked: list[T], facets: Mapping[int, Any], *, now: datetime
) -> tuple[list[T], int]:
    """The ranked candidates less blocked providers, items and keywords, with boosts
    applied (``rule_boost`` in their signals) and sorted again; and how many were removed
    (pass it to :func:`apply`)."""
    return engine.adjust_ranked(ranked, facets, rules=snapshot.current(now), now=now)


def apply(
    sections: list[S],
    *,
    user_id: int,
    by_id: Mapping[int, Scored],
    facets: Mapping[int, Any],
    now: datetime,
    degraded: bool = False,
    removed: int = 0,
) -> list[S]:
    """The feed's disjoint sections with the rules applied: blocklists on every section,
    diversity caps and MMR on first pages, sponsored campaigns at their ``for_you`` slots
    (paced and capped in Redis; none when ``degraded`` or Redis is away). ``by_id``: the
    ranked candidates by item id (their scores decide the relevance floor)."""
    return engine.finish(
        sections,
        user_id=user_id,
        by_id=by_id,
        facets=facets,
        rules=snapshot.current(now),
        now=now,
        degraded=degraded,
        removed=removed,
    )


def forget() -> None:
    """Drop the process's rules and its memos of item titles and embeddings; the next call
    loads them (tests, benchmarks)."""
    snapshot.forget()
    memo.clear()


def forget_memos() -> None:
    """Drop the process's memos of item titles and embeddings, keeping its rules: the next
    build reads them as a process that has not seen its candidates does (benchmarks)."""
    memo.clear()


def rule_create(data: Mapping[str, Any], *, user: Any) -> int:
    """Create a rule as the API does (validated: ``InvalidInput``/``Conflict``), recorded
    with its author; its id (scripts and benchmarks)."""
    return int(services.rule_create(data, user=user).id)


def rule_delete(rule_id: int, *, user: Any) -> None:
    """Delete a rule as the API does (recorded with its author; scripts and benchmarks)."""
    services.rule_delete(rule_id, user=user)


def version(now: datetime) -> int:
    """The version of the rules this process serves (in process; the version check at most
    every ``RULES_REFRESH_SECONDS``): a feed cached under another version is built again, so
    a block or a campaign reaches every reader's next home."""
    return snapshot.current(now).version
