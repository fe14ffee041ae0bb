"""The append-only event log, the source of truth for every counter and feature."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from features_app.contracts import EVENT_TYPE_CHOICES, Engagement


class UserEvent(models.Model):
    """One thing a user did with an item, at the moment it happened.

    Append-only, and in PostgreSQL a table partitioned by RANGE (``occurred_at``), one
    partition per UTC month (migration 0003, ``features_app.partitions``). Every unique key
    of a partitioned table must contain the partition key, so:

    * the database primary key is ``(id, occurred_at)``; Django still treats ``id`` as the
      primary key (ids come from one sequence, so they stay unique), but no foreign key can
      point at this table;
    * idempotency is ``(event_id, user, occurred_at)`` — a retried batch carries the same
      ``event_id`` and the same ``occurred_at``; event ids are the clients', so unique per
      user only (the key leads with ``event_id`` so that a lookup by id alone uses it).

    Filter by ``occurred_at`` (with the user or the item) so that PostgreSQL reads only the
    months asked for. The foreign keys have no single-column index: ``(user, occurred_at)``
    and ``(item, occurred_at)`` serve lookups by user or item as well.
    """

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    item = models.ForeignKey(
        "reading_app.Item", on_delete=models.CASCADE, related_name="events", db_index=False
    )
    event_type = models.CharField(max_length=16, choices=EVENT_TYPE_CHOICES)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    event_id = models.UUIDField(default=uuid.uuid4, help_text="Client idempotency key")
    source = models.CharField(max_length=32, default="app", help_text="app, demo, mind, …")
    context = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-occurred_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "user", "occurred_at"], name="user_event_user_idempotency"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "occurred_at"], name="user_event_user_time_idx"),
            models.Index(fields=["item", "occurred_at"], name="user_event_item_time_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"{self.user_id} {self.event_type} {self.item_id} @ {self.occurred_at:%Y-%m-%d %H:%M}"
        )


class ItemFeature(models.Model):
    """Durable copy of an item's counters, synced from Redis after validation.

    Lifetime totals and windowed counts (1, 7, 28 days) per event type, plus the smoothed
    click-through rate. Reconciliation recomputes them from ``UserEvent``.
    """

    item = models.OneToOneField(
        "reading_app.Item", on_delete=models.CASCADE, primary_key=True, related_name="feature"
    )
    impressions = models.BigIntegerField(default=0)
    clicks = models.BigIntegerField(default=0)
    reads = models.BigIntegerField(default=0)
    saves = models.BigIntegerField(default=0)
    shares = models.BigIntegerField(default=0)
    dismisses = models.BigIntegerField(default=0)
    hides = models.BigIntegerField(default=0)
    dwell_ms = models.BigIntegerField(default=0, help_text="Total reading time reported")
    impressions_1d = models.BigIntegerField(default=0)
    impressions_7d = models.BigIntegerField(default=0)
    impressions_28d = models.BigIntegerField(default=0)
    clicks_1d = models.BigIntegerField(default=0)
    clicks_7d = models.BigIntegerField(default=0)
    clicks_28d = models.BigIntegerField(default=0)
    reads_7d = models.BigIntegerField(default=0)
    saves_7d = models.BigIntegerField(default=0)
    ctr = models.FloatField(default=0.0, help_text="(clicks + 1) / (impressions + 25)")
    synced_at = models.DateTimeField()

    class Meta:
        ordering = ("-clicks", "item_id")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(impressions__gte=0)
                & models.Q(clicks__gte=0)
                & models.Q(reads__gte=0)
                & models.Q(saves__gte=0),
                name="item_feature_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"features of item {self.item_id}"


class CounterQuarantine(models.Model):
    """A counter value that failed validation: reported, never written to ItemFeature."""

    class Reason(models.TextChoices):
        NEGATIVE = "negative", "Negative value"
        CLICKS_EXCEED_IMPRESSIONS = "clicks_exceed_impressions", "Clicks exceed impressions"
        DECREASED = "decreased", "Total decreased"
        OUTLIER = "outlier", "Outlier"

    item = models.ForeignKey(
        "reading_app.Item", on_delete=models.CASCADE, related_name="quarantined_counters"
    )
    counter = models.CharField(max_length=32)
    value = models.BigIntegerField()
    previous = models.BigIntegerField(null=True, blank=True)
    reason = models.CharField(max_length=32, choices=Reason.choices)
    detail = models.CharField(max_length=200, blank=True)
    detected_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-detected_at", "-id")
        verbose_name_plural = "quarantined counters"
        indexes = [
            models.Index(
                fields=["item", "counter"],
                condition=models.Q(resolved_at__isnull=True),
                name="quarantine_open_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.counter}={self.value} of item {self.item_id}: {self.reason}"


class CounterSnapshot(models.Model):
    """A point-in-time copy of every feature-store key in Redis (``DUMP`` format).

    The copy is a cut of the event log (ADR 0016): it reflects every event with an id up to
    ``last_event_id`` (the log's watermark, final when taken) except ``unapplied_event_ids``
    (stored but still pending then). A restore loads the copy, then counts exactly the
    events outside it.
    """

    created_at = models.DateTimeField(auto_now_add=True)
    last_event_id = models.BigIntegerField()
    unapplied_event_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    key_count = models.PositiveIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    complete = models.BooleanField(default=False)

    class Meta:
        ordering = ("-created_at", "-id")
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"snapshot {self.pk} at {self.created_at:%Y-%m-%d %H:%M} ({self.key_count} keys)"


class CounterSnapshotKey(models.Model):
    """One Redis key of a snapshot: its name, ``DUMP`` payload and remaining TTL."""

    snapshot = models.ForeignKey(CounterSnapshot, on_delete=models.CASCADE, related_name="keys")
    key = models.CharField(max_length=200)
    payload = models.BinaryField()
    ttl_ms = models.BigIntegerField(default=0, help_text="0: no expiry")

    class Meta:
        ordering = ("snapshot", "id")
        constraints = [
            models.UniqueConstraint(fields=["snapshot", "key"], name="snapshot_key_unique")
        ]

    def __str__(self) -> str:
        return self.key


class PendingCount(models.Model):
    """Events stored but not yet confirmed counted in Redis: one row per stored batch.

    Written in the same transaction as the events (so nothing acknowledged is forgotten),
    deleted once the batch is applied. The counting script records the row's id in Redis
    with the counters (``keys.features_applied_batches``), so a batch is applied once even
    when the answer was lost. The pending sweep applies what ingestion could not (ADR 0016).
    """

    id = models.BigAutoField(primary_key=True)
    event_ids = ArrayField(models.BigIntegerField())
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"pending batch {self.pk} ({len(self.event_ids)} events)"


class ItemEmbedding(models.Model):
    """An item's text embedding (title, summary and the start of the body): float32 bytes,
    unit length, with the model version that produced it (``features_app.embeddings``).

    ``text_hash`` is the SHA-256 of the embedded text: an edit that leaves the text as it
    was is not recomputed. A row of an older ``model_version`` is stale and recomputed.
    """

    item = models.OneToOneField(
        "reading_app.Item", on_delete=models.CASCADE, primary_key=True, related_name="embedding"
    )
    model_version = models.CharField(max_length=64)
    vector = models.BinaryField(help_text="float32 little-endian, unit length")
    text_hash = models.CharField(max_length=64)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-updated_at", "item_id")

    def __str__(self) -> str:
        return f"embedding of item {self.item_id} ({self.model_version})"


class ProviderEmbedding(models.Model):
    """A provider's embedding: the renormalised mean of its most recent items' embeddings."""

    provider = models.OneToOneField(
        "reading_app.Provider",
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="embedding",
    )
    model_version = models.CharField(max_length=64)
    vector = models.BinaryField(help_text="float32 little-endian, unit length")
    item_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-updated_at", "provider_id")

    def __str__(self) -> str:
        return f"embedding of provider {self.provider_id} ({self.model_version})"


class UserEmbedding(models.Model):
    """A user's taste as one vector: the time-decayed, weighted mean of the embeddings of the
    items they engaged with, minus those they dismissed or hid, renormalised."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="embedding",
    )
    model_version = models.CharField(max_length=64)
    vector = models.BinaryField(help_text="float32 little-endian, unit length")
    item_count = models.PositiveIntegerField(default=0, help_text="Items that contributed")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-updated_at", "user_id")

    def __str__(self) -> str:
        return f"embedding of user {self.user_id} ({self.model_version})"


class SegmentAssignment(models.Model):
    """A user's current segments, as the last segmentation run computed them
    (``features_app.segments``): the engagement segment with the figures it came from, and
    the interest cluster. One row per user, rewritten by every run; Redis keeps a copy for
    the request path (``keys.user_segment``)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="segment",
    )
    engagement = models.CharField(
        max_length=16, choices=[(e.value, e.value.capitalize()) for e in Engagement]
    )
    cluster = models.SmallIntegerField(null=True, blank=True, help_text="None: no taste yet")
    cluster_label = models.CharField(max_length=200, blank=True)
    last_active_at = models.DateTimeField(null=True, blank=True)
    active_days = models.PositiveSmallIntegerField(
        default=0, help_text="Days with an event other than an impression, in the window"
    )
    depth = models.FloatField(default=0.0, help_text="Reads (or long dwells) per click, 0..1")
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ("user_id",)
        indexes = [
            models.Index(fields=["engagement"], name="segment_engagement_idx"),
            models.Index(fields=["cluster"], name="segment_cluster_idx"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id}: {self.engagement}, cluster {self.cluster}"


class SegmentSize(models.Model):
    """How many users a segment held on a UTC day (its last run that day): the history the
    admin plots. ``kind`` is ``engagement`` (``key`` the segment's name) or ``cluster``
    (``key`` the cluster id, ``label`` its words)."""

    class Kind(models.TextChoices):
        ENGAGEMENT = "engagement", "Engagement"
        CLUSTER = "cluster", "Interest cluster"

    day = models.DateField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    key = models.CharField(max_length=32)
    label = models.CharField(max_length=200, blank=True)
    users = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField()

    class Meta:
        ordering = ("-day", "kind", "key")
        constraints = [
            models.UniqueConstraint(fields=["day", "kind", "key"], name="segment_size_day_key")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.kind} {self.key}: {self.users}"


class DetachedMonth(models.Model):
    """A month of the event log taken out of ``UserEvent`` (``partitions.detach_partitions``),
    with the counts it held: its ``CounterBaseline`` rows are added to every recount of the
    lifetime counters from the attached months (reconcile, restore, the degraded path).

    One row per detached table (``table``, e.g. ``features_app_userevent_d2019_11``), written
    in the transaction that detaches it: a month detached twice (a late event recreated its
    partition) has two rows, each counting its own events once."""

    table = models.CharField(max_length=63, unique=True)
    month = models.DateField(help_text="First day of the UTC month")
    rows = models.BigIntegerField(default=0)
    min_event_id = models.BigIntegerField(null=True, blank=True)
    max_event_id = models.BigIntegerField(null=True, blank=True)
    detached_at = models.DateTimeField()

    class Meta:
        ordering = ("month", "id")

    def __str__(self) -> str:
        return f"{self.table} ({self.rows} events)"


class CounterBaseline(models.Model):
    """One counter field as a detached month's events alone made it: ``value`` of field
    ``field`` of Redis key ``key`` (item and user lifetime counts, affinity, seen memory,
    first-seen times, decayed sums of epochs still kept). ``cleared``: seen memory only, the
    month ended with the field cleared by a positive action (so what came before it no
    longer counts)."""

    detached = models.ForeignKey(DetachedMonth, on_delete=models.CASCADE, related_name="baseline")
    key = models.CharField(max_length=200)
    field = models.CharField(max_length=64)
    value = models.FloatField()
    cleared = models.BooleanField(default=False)

    class Meta:
        ordering = ("detached", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["detached", "key", "field"], name="counter_baseline_field_once"
            )
        ]
        indexes = [models.Index(fields=["key"], name="counter_baseline_key_idx")]

    def __str__(self) -> str:
        return f"{self.key} {self.field}={self.value:g}"
