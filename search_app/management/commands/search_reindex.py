"""manage.py search_reindex: rebuild the search indexes from the catalog, zero downtime."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from tqdm import tqdm

from reading_app.contracts import CatalogKind
from search_app.backends import BACKENDS, POSTGRES
from search_app.services import indexing


class Command(BaseCommand):
    help = (
        "Rebuild search indexes from the whole catalog while searches keep being answered "
        "(PostgreSQL: one transaction; Meilisearch: a new index, then a swap). Default: the "
        "configured backend and PostgreSQL's index (the fallback). Changes made meanwhile "
        "are queued again for the indexing task."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--backend",
            action="append",
            choices=BACKENDS,
            help="Rebuild only this backend's index (repeatable).",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bars.")

    def handle(self, *args: Any, **options: Any) -> None:
        names = options["backend"] or list(dict.fromkeys([settings.SEARCH_BACKEND, POSTGRES]))
        bars: dict[tuple[str, CatalogKind], tqdm] = {}

        def progress(backend: str, doc_type: CatalogKind, done: int, total: int) -> None:
            bar = bars.get((backend, doc_type))
            if bar is None:
                bar = bars[(backend, doc_type)] = tqdm(
                    total=total, desc=f"{backend} {doc_type.value}", unit="doc", leave=True
                )
            bar.update(done - bar.n)

        started = time.perf_counter()
        try:
            counts = indexing.reindex(names, progress=None if options["no_progress"] else progress)
        finally:
            for bar in bars.values():
                bar.close()
        seconds = time.perf_counter() - started
        for name, per_type in counts.items():
            figures = ", ".join(f"{n} {doc_type}" for doc_type, n in per_type.items())
            self.stdout.write(f"{name}: {figures}")
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {', '.join(counts)} in {seconds:.1f} s."))
