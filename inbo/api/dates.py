"""The range of moments the API reads from clients, shared by every date query parameter.

Dates outside it are clamped to it: every date a client may send still means what it says
("before 9999-12-31" is "no upper bound"), and no arithmetic on it (a day added, an offset
applied, a timestamp taken, PostgreSQL's own offset limit of ±15:59) can overflow.
"""

from __future__ import annotations

from datetime import UTC, datetime

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2101, 1, 1, tzinfo=UTC)  # exclusive: 2100-12-31 is the last day


def clamp(moment: datetime) -> datetime:
    """``moment`` (UTC when naive) within ``EARLIEST``..``LATEST``, in UTC."""
    # The year is checked before any conversion: moving year 9999 or year 1 by a time
    # zone offset overflows.
    if moment.year < EARLIEST.year - 1:
        return EARLIEST
    if moment.year > LATEST.year:
        return LATEST
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return min(max(moment, EARLIEST), LATEST)
