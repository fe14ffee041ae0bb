"""Checks a counter must pass before it is written to ``ItemFeature``.

Redis is fast but not trusted blindly: a value that is negative, impossible (more clicks
than impressions beyond a tolerance for late impressions), lower than the total already
synced (totals never decrease), or an outlier is quarantined and reported instead.
"""

from __future__ import annotations

from dataclasses import dataclass

# Clicks can arrive before their impressions (clients batch differently): allow this many.
CLICK_TOLERANCE_ABSOLUTE = 5
CLICK_TOLERANCE_RATIO = 1.1
# A counter that grows by more than this between two syncs (and by a lot) is suspicious.
OUTLIER_GROWTH_FACTOR = 100
OUTLIER_MIN_JUMP = 100_000
LIFETIME_FIELDS = ("impressions", "clicks", "reads", "saves", "shares", "dismisses", "hides")


@dataclass(frozen=True, slots=True)
class Problem:
    counter: str
    value: int
    previous: int | None
    reason: str  # one of CounterQuarantine.Reason
    detail: str = ""


def validate(current: dict[str, int], previous: dict[str, int] | None) -> list[Problem]:
    """Problems with an item's lifetime counters (``previous``: the last synced values)."""
    problems: list[Problem] = []
    for name in LIFETIME_FIELDS:
        value = current.get(name, 0)
        before = previous.get(name) if previous else None
        if value < 0:
            problems.append(Problem(name, value, before, "negative"))
        elif before is not None and value < before:
            problems.append(
                Problem(name, value, before, "decreased", f"was {before} at the last sync")
            )
        elif (
            before is not None
            and value - before > OUTLIER_MIN_JUMP
            and value > OUTLIER_GROWTH_FACTOR * max(before, 1)
        ):
            problems.append(
                Problem(name, value, before, "outlier", f"grew from {before} to {value}")
            )
    clicks, impressions = current.get("clicks", 0), current.get("impressions", 0)
    if clicks > max(impressions * CLICK_TOLERANCE_RATIO, impressions + CLICK_TOLERANCE_ABSOLUTE):
        problems.append(
            Problem(
                "clicks",
                clicks,
                previous.get("clicks") if previous else None,
                "clicks_exceed_impressions",
                f"{clicks} clicks for {impressions} impressions",
            )
        )
    return problems
