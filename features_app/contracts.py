"""Values that cross the features_app boundary (frozen dataclasses and enums only)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class EventType(enum.StrEnum):
    """What a user did with an item. The ranking weights each type differently."""

    IMPRESSION = "impression"
    CLICK = "click"
    READ = "read"  # read to the end
    SAVE = "save"
    SHARE = "share"
    DISMISS = "dismiss"
    HIDE = "hide"


@dataclass(frozen=True, slots=True)
class EventIn:
    """One event to append to the log. ``event_id`` is the idempotency key."""

    user_id: int
    item_id: int
    event_type: EventType
    occurred_at: datetime
    event_id: uuid.UUID
    source: str = "app"
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RecordResult:
    """How many events of a batch were new and how many were already stored."""

    created: int
    duplicates: int
