"""``manage.py embed_items``: content embeddings of the catalog, in bulk."""

from __future__ import annotations

import time
from typing import IO, cast

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from tqdm import tqdm

from features_app import embeddings
from reading_app import public as reading

_CHECK_CHUNK = 10_000


class Command(BaseCommand):
    """Embed published items (title, summary, start of body) with the packaged model."""

    help = (
        "Embed the published items that have no vector of the current model version "
        f"({embeddings.MODEL_VERSION}); --all re-checks every published item (an unchanged "
        "text is still skipped; --force recomputes). Progress bar on stderr, then a summary "
        "line with items/s. Catalog changes are embedded by the inbo.features.embed_items "
        "task without this command; run it after a first import or a model change."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="Check every published item.")
        parser.add_argument("--force", action="store_true", help="Recompute unchanged texts.")
        parser.add_argument("--batch-size", type=int, default=64, help="Texts per batch (64).")
        parser.add_argument("--limit", type=int, default=None, help="At most N items.")
        parser.add_argument(
            "--threads",
            type=int,
            default=0,
            help="Torch threads (0, the default: every core; workers use "
            "EMBEDDINGS_TORCH_THREADS).",
        )

    def handle(
        self,
        *args,
        all: bool,
        force: bool,
        batch_size: int,
        limit: int | None,
        threads: int,
        **options,
    ) -> None:
        if batch_size < 1 or (limit is not None and limit < 0):
            raise CommandError("--batch-size must be at least 1 and --limit not negative")
        ids = reading.searchable_ids(reading.CatalogKind.ITEMS)
        if not (all or force):
            ids = [
                i
                for start in range(0, len(ids), _CHECK_CHUNK)
                for i in embeddings.missing_item_ids(ids[start : start + _CHECK_CHUNK])
            ]
        if limit is not None:
            ids = ids[:limit]
        embeddings.model()
        embeddings.set_threads(threads)
        started = time.perf_counter()
        err = self.stderr
        stream = cast(IO[str], err._out) if isinstance(err, OutputWrapper) else err
        with tqdm(total=len(ids), desc="embedding", unit="item", file=stream) as bar:
            result = embeddings.embed_items(
                ids, batch_size=batch_size, force=force, progress=bar.update
            )
        seconds = time.perf_counter() - started
        rate = result.embedded / seconds if seconds > 0 else 0.0
        self.stdout.write(
            f"embedded {result.embedded:,}, unchanged {result.unchanged:,}, removed "
            f"{result.removed:,} of {len(ids):,} items; {len(result.provider_ids):,} providers; "
            f"{seconds:.1f}s, {rate:,.1f} items/s ({embeddings.MODEL_VERSION})"
        )
