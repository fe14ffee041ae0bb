"""Search: the indexing outbox, PostgreSQL's own index, and the search analytics log."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q
from django.utils import timezone

from reading_app.contracts import CatalogKind
from search_app.contracts import Sort

DOC_TYPES = [(t.value, t.value) for t in CatalogKind]


class SearchOutbox(models.Model):
    """A catalog change waiting to reach the search indexes (transactional outbox).

    Written in the same transaction as the change (``services.outbox.enqueue``); one live
    row (pending or failed) per document, so repeated changes coalesce. The indexing task
    claims rows (``in_flight``), writes the documents, and deletes them; a failed write is
    retried with exponential backoff until ``SEARCH_INDEX_MAX_ATTEMPTS``, then the row is
    ``dead``: the dead-letter record, retried from the admin.
    """

    class Op(models.TextChoices):
        UPSERT = "upsert", "Upsert"
        DELETE = "delete", "Delete"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        IN_FLIGHT = "in_flight", "In flight"
        FAILED = "failed", "Failed (will retry)"
        DEAD = "dead", "Dead (retries exhausted)"

    LIVE = (Status.PENDING, Status.FAILED)

    doc_type = models.CharField(max_length=16, choices=DOC_TYPES)
    object_id = models.BigIntegerField()
    op = models.CharField(max_length=8, choices=Op.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, help_text="First change of this row")
    changed_at = models.DateTimeField(default=timezone.now, help_text="Latest change coalesced")
    last_error = models.TextField(blank=True)
    task_ref = models.CharField(
        max_length=500, blank=True, help_text="Engine task ids of the last write (reconciled)"
    )

    class Meta:
        ordering = ("next_attempt_at", "id")
        verbose_name = "search outbox row"
        constraints = [
            models.UniqueConstraint(
                fields=["doc_type", "object_id"],
                condition=Q(status__in=["pending", "failed"]),
                name="search_outbox_one_live_row",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="search_outbox_due_idx"),
            # The claim's order over live rows: it reads the due ones first and stops at its
            # limit (its ``<= clock_timestamp()`` is volatile, no index condition can use it).
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=Q(status__in=["pending", "failed"]),
                name="search_outbox_live_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.op} {self.doc_type}:{self.object_id} ({self.status})"


class SearchDocument(models.Model):
    """PostgreSQL's search index: one row per item or provider, with a weighted tsvector.

    Written only by ``backends.postgres`` (raw SQL builds ``search_vector``: title A,
    provider B, summary C, body D, through the ``inbo_search`` and ``inbo_prefix`` text
    search configurations, accents removed). Kept in sync whatever ``SEARCH_BACKEND`` is:
    it is the fallback when the engine is down.
    """

    doc_type = models.CharField(max_length=16, choices=DOC_TYPES)
    object_id = models.BigIntegerField()
    title = models.TextField()
    provider_id = models.BigIntegerField(null=True, blank=True)
    provider_name = models.TextField(blank=True)
    provider_slug = models.CharField(max_length=220, blank=True)
    summary = models.TextField(blank=True)
    body = models.TextField(blank=True, help_text="Excerpt of the body")
    categories = ArrayField(models.CharField(max_length=140), default=list, blank=True)
    language = models.CharField(max_length=8, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    search_vector = SearchVectorField(null=True)
    indexed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("doc_type", "object_id")
        constraints = [
            models.UniqueConstraint(fields=["doc_type", "object_id"], name="search_document_key"),
        ]
        indexes = [
            GinIndex(fields=["search_vector"], name="search_document_vector_idx"),
            GinIndex(fields=["categories"], name="search_document_cat_idx"),
            models.Index(
                fields=["doc_type", "-published_at", "-object_id"], name="search_document_new_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.doc_type}:{self.object_id} {self.title[:60]}"


class SearchVocabulary(models.Model):
    """Words of the indexed text (unaccented, lower case, no stop words), for typo
    correction by trigram similarity. Refreshed by ``backends.postgres`` after writes."""

    word = models.CharField(max_length=64, primary_key=True)
    ndoc = models.PositiveIntegerField(default=0, help_text="Documents with the word")

    class Meta:
        ordering = ("word",)
        verbose_name_plural = "search vocabulary"
        indexes = [
            GinIndex(fields=["word"], opclasses=["gin_trgm_ops"], name="search_vocab_trgm_idx"),
        ]

    def __str__(self) -> str:
        return self.word


class SearchLog(models.Model):
    """One search as answered: the analytics record clicks point at (``search_id``)."""

    search_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    query = models.CharField(max_length=200, blank=True, help_text="Normalized, lower case")
    corrected_query = models.CharField(max_length=200, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    doc_type = models.CharField(max_length=16, choices=DOC_TYPES, default=CatalogKind.ITEMS.value)
    sort = models.CharField(
        max_length=16, choices=[(s.value, s.value) for s in Sort], default=Sort.RELEVANCE.value
    )
    page = models.PositiveIntegerField(default=1)
    backend = models.CharField(max_length=32)
    degraded = models.BooleanField(default=False)
    result_count = models.PositiveIntegerField(default=0)
    latency_ms = models.FloatField(default=0.0)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="search_logs",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["created_at"], name="search_log_created_idx")]

    def __str__(self) -> str:
        return f"{self.query!r} ({self.result_count} results)"


class SearchClick(models.Model):
    """A result the searcher opened: its id and 1-based position in the result list."""

    search = models.ForeignKey(SearchLog, on_delete=models.CASCADE, related_name="clicks")
    object_id = models.BigIntegerField()
    position = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["search", "object_id"], name="search_click_once"),
        ]

    def __str__(self) -> str:
        return f"{self.search_id} → {self.object_id} @{self.position}"
