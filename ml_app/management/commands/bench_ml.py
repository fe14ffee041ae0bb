"""Time training the learned models on each dataset: ALS and LightGBM lambdarank.

    python manage.py bench_ml [--data /work/shared/datasets] [--rounds 300] [--threads 2]

A benchmark, not a test (``make bench-ml`` runs it with the serving costs); what is timed and
on what is in :mod:`ml_app.services.training_bench`. A dataset whose folder is absent is
skipped with a message.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from experience_app.public import FEATURES
from ml_app.services import training_bench
from ml_app.services.reranker_training import MAX_ROUNDS

DEFAULT_DATA = Path("/work/shared/datasets")


class Command(BaseCommand):
    help = "Time ALS and LightGBM lambdarank training on each dataset (a benchmark)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data", type=Path, default=DEFAULT_DATA, help="Folder holding the datasets."
        )
        parser.add_argument(
            "--datasets",
            nargs="*",
            default=list(training_bench.READERS),
            choices=list(training_bench.READERS),
        )
        parser.add_argument("--rounds", type=int, default=MAX_ROUNDS, help="Boosting rounds.")
        parser.add_argument(
            "--threads",
            type=int,
            default=settings.ML_TRAIN_THREADS,
            help="LightGBM threads (default: ML_TRAIN_THREADS; ALS always uses one).",
        )
        parser.add_argument("--json", type=Path, default=None, help="Also write the figures.")

    def handle(self, *args: Any, **options: Any) -> None:
        root: Path = options["data"]
        timings = []
        for name in options["datasets"]:
            if not training_bench.available(root, name):
                self.stdout.write(f"{name}: skipped ({root / name} has no dataset)")
                continue
            t = training_bench.bench_dataset(
                name, root / name, rounds=options["rounds"], threads=options["threads"]
            )
            timings.append(t)
            self.stdout.write(
                f"{t.dataset}: ALS {t.als_seconds:.2f}s wall, {t.als_cpu_seconds:.2f}s CPU "
                f"({t.als_pairs:,} pairs, {t.als_users:,} users x {t.als_items:,} items, "
                f"1 thread); LightGBM lambdarank {t.gbm_seconds:.2f}s wall, "
                f"{t.gbm_cpu_seconds:.2f}s CPU ({t.gbm_rows:,} rows in {t.gbm_groups:,} groups,"
                f" {len(FEATURES)} features, {t.gbm_rounds} rounds, {t.gbm_threads} threads)"
            )
        if options["json"]:
            options["json"].write_text(json.dumps([asdict(t) for t in timings], indent=2) + "\n")
