"""Values that cross the features_app boundary (frozen dataclasses, enums and the signals
it sends)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.dispatch import Signal


class EventType(enum.StrEnum):
    """What a user did with an item. The ranking weights each type differently."""

    IMPRESSION = "impression"
    CLICK = "click"
    READ = "read"  # read to the end
    SAVE = "save"
    SHARE = "share"
    DISMISS = "dismiss"
    HIDE = "hide"


# The event types as Django choices, for every model field and serializer that stores or
# accepts one (the feature store's log and experience_app's interactions), so the vocabulary
# is defined once, here. Labels are the capitalized values.
EVENT_TYPE_CHOICES = [(t.value, t.value.capitalize()) for t in EventType]


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


# How much each event type says about a user's taste (affinity learning) — negative
# feedback counts against the item's categories and provider.
AFFINITY_WEIGHTS: dict[EventType, float] = {
    EventType.IMPRESSION: 0.0,
    EventType.CLICK: 1.0,
    EventType.READ: 2.0,
    EventType.SAVE: 3.0,
    EventType.SHARE: 3.0,
    EventType.DISMISS: -2.0,
    EventType.HIDE: -4.0,
}
# Event types that mean "this user engaged": they clear the seen-without-click memory.
POSITIVE_TYPES = frozenset({EventType.CLICK, EventType.READ, EventType.SAVE, EventType.SHARE})


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Outcome of ingesting a batch: stored in PostgreSQL, and counted in Redis or not."""

    created: int
    duplicates: int
    counted: bool


@dataclass(frozen=True, slots=True)
class ItemSignals:
    """Popularity signals of one item at a moment, from the feature store.

    ``decayed_clicks`` and ``decayed_expected`` are exponentially decayed sums: clicks, and
    the clicks the item was expected to get where it was shown (each impression weighs the
    click rate of the list it was shown in). Their smoothed ratio is the item's ``lift``.
    """

    item_id: int
    impressions: int = 0
    clicks: int = 0
    reads: int = 0
    saves: int = 0
    dismisses: int = 0
    decayed_clicks: float = 0.0
    decayed_expected: float = 0.0
    first_seen: datetime | None = None

    @property
    def lift(self) -> float:
        """Clicks over expected clicks, with one expected click of prior: 1.0 = average."""
        return (self.decayed_clicks + 1.0) / (self.decayed_expected + 1.0)

    @property
    def ctr(self) -> float:
        """Smoothed lifetime click-through rate (prior: 1 click in 25 impressions)."""
        return (self.clicks + 1.0) / (self.impressions + 25.0)


@dataclass(frozen=True, slots=True)
class UserProfile:
    """What the feature store knows of a user's taste and recent exposure."""

    user_id: int
    event_counts: dict[str, int] = field(default_factory=dict)
    category_affinity: dict[int, float] = field(default_factory=dict)
    provider_affinity: dict[int, float] = field(default_factory=dict)
    seen: dict[int, int] = field(default_factory=dict)

    @property
    def is_cold(self) -> bool:
        """No positive signal yet: the feed falls back to onboarding interests and popularity."""
        return not any(v > 0 for v in self.category_affinity.values())


@dataclass(frozen=True, slots=True)
class Forgetting:
    """What a reader asked INBO to forget (issue 13, user control): their events at or
    before ``before`` no longer shape their affinity for one category or one provider, or,
    with neither given (a reset), their affinity, seen memory and event counts at all.

    Recorded by experience_app (a removed interest, a reset) and honoured wherever the
    feature store counts a user's taste from the log: the recount of reconcile and restore,
    the user embeddings, the PostgreSQL fallback, the interest clusters of segments and,
    through ``events_between(remembered=True)``, ALS (see ``features_app.forgetting``).
    """

    user_id: int
    before: datetime
    category_id: int | None = None
    provider_id: int | None = None

    @property
    def everything(self) -> bool:
        return self.category_id is None and self.provider_id is None


# Sent after the feature store restored counters into a Redis that came back empty, with
# ``seconds`` (how long the restore took) and ``events`` (events replayed). Monitoring turns
# it into metrics; the feature store itself does not depend on monitoring.
counters_recovered = Signal()
# Sent by the retention job (``features_app.retention``) after it deleted a log's old rows:
# ``log`` (its name), ``rows``. Monitoring counts them.
retention_purged = Signal()


# --- Segments (docs/FEATURE_STORE.md "Segments") -----------------------------------------


class Engagement(enum.StrEnum):
    """A user's engagement segment, from recency, frequency and depth of their events."""

    NEW = "new"  # joined lately, whatever they did since
    CASUAL = "casual"  # active now and then
    REGULAR = "regular"  # active on many days
    POWER = "power"  # active on most days, and reads what they open
    DORMANT = "dormant"  # nothing done lately


# The engagement segments as a number for ranking (``engagement_level``): more engaged is
# higher. A new user sits between dormant and casual: little is known either way.
ENGAGEMENT_LEVELS: dict[str, int] = {
    Engagement.DORMANT: 0,
    Engagement.NEW: 1,
    Engagement.CASUAL: 2,
    Engagement.REGULAR: 3,
    Engagement.POWER: 4,
}


@dataclass(frozen=True, slots=True)
class UserSegment:
    """A user's segments as the last segmentation run left them.

    ``cluster`` is the user's interest cluster (``None``: no positive taste yet), and
    ``cluster_label`` says it in words (its top categories, e.g. "Technology, Science").
    """

    user_id: int
    engagement: str
    cluster: int | None
    cluster_label: str
    computed_at: datetime

    @property
    def engagement_level(self) -> int:
        """0 (dormant) .. 4 (power), the ranking's ``engagement_level`` signal."""
        return ENGAGEMENT_LEVELS.get(self.engagement, 0)
