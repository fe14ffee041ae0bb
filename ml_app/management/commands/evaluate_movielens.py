"""``manage.py evaluate_movielens``: ALS on MovieLens 100K, Gorse's protocol and a time split."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError, CommandParser

from experience_app.public import bar
from ml_app.als import AlsParams
from ml_app.datasets.movielens import ReadReport, read_ratings
from ml_app.movielens_eval import (
    FoldResult,
    Scores,
    default_cut,
    evaluate_kfold,
    evaluate_time_split,
)

RATINGS_FILES = ("u.data.dev", "u.data")


def _row(label: str, scores: Scores) -> str:
    return f"  {label:<38} NDCG@10 {scores.ndcg:.4f}   P@10 {scores.precision:.4f}"


class Command(BaseCommand):
    help = (
        "Evaluate implicit ALS on MovieLens 100K. (1) Gorse's protocol: random k-fold over the "
        "ratings file, full ranking over the test fold's items minus the user's training "
        "items, every test rating relevant, NDCG@10 and P@10 averaged over folds, printed "
        "beside Gorse's published rows (published_results.csv) and an ItemPop baseline of the "
        "same run. (2) A time split: train before --cut, test after, warm and cold users apart."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", required=True, type=Path, help="The dataset folder.")
        parser.add_argument("--folds", type=int, default=5)
        parser.add_argument("--seed", type=int, default=0, help="Shuffle and ALS seed.")
        parser.add_argument(
            "--published",
            type=Path,
            default=None,
            help="Published results CSV (default: DIR/published_results.csv, if present).",
        )
        parser.add_argument(
            "--cut",
            type=int,
            default=None,
            help="Time-split cut (Unix seconds); default: the 80%% quantile of the timestamps.",
        )

    def handle(
        self,
        *args: object,
        data: Path,
        folds: int,
        seed: int,
        published: Path | None,
        cut: int | None,
        **options: object,
    ) -> None:
        if folds < 2:
            raise CommandError("--folds must be at least 2.")
        ratings_path = next((data / n for n in RATINGS_FILES if (data / n).is_file()), None)
        if ratings_path is None:
            raise CommandError(f"No ratings file ({' or '.join(RATINGS_FILES)}) in {data}")
        report = ReadReport()
        ratings = list(read_ratings(ratings_path, report))
        for number, reason in report.bad[:20]:
            self.stderr.write(f"{ratings_path.name} line {number}: {reason}")
        if len(ratings) < folds:
            raise CommandError(f"{ratings_path} has too few valid ratings ({len(ratings)}).")
        params = AlsParams(seed=seed)
        users = len({r.user_id for r in ratings})
        items = len({r.item_id for r in ratings})
        self.stdout.write(
            f"{ratings_path}: {len(ratings)} ratings, {users} users, {items} items "
            f"({len(report.bad)} bad lines skipped)"
        )
        self.stdout.write(
            f"ALS: factors {params.factors}, regularization {params.regularization}, "
            f"alpha {params.alpha}, iterations {params.iterations}, seed {seed}, 1 thread"
        )

        started = time.perf_counter()
        progress = bar(total=folds, stream=self.stderr, desc="folds")
        results: list[FoldResult] = []

        def on_fold(index: int, result: FoldResult) -> None:
            results.append(result)
            progress.update(1)

        try:
            evaluate_kfold(ratings, folds, seed, params, on_fold)
        except ValueError as error:
            raise CommandError(str(error)) from error
        finally:
            progress.close()
        self.stdout.write(f"\nGorse's protocol: random {folds}-fold (seed {seed}), mean of folds")
        for index, r in enumerate(results):
            self.stdout.write(
                f"  fold {index + 1}: ALS NDCG@10 {r.als.ndcg:.4f} P@10 {r.als.precision:.4f}"
                f" | ItemPop NDCG@10 {r.pop.ndcg:.4f} P@10 {r.pop.precision:.4f}"
                f" | {r.als.users} users, trained in {r.train_seconds:.2f}s"
            )
        als = Scores(
            float(np.mean([r.als.ndcg for r in results])),
            float(np.mean([r.als.precision for r in results])),
            results[0].als.users,
        )
        pop = Scores(
            float(np.mean([r.pop.ndcg for r in results])),
            float(np.mean([r.pop.precision for r in results])),
            results[0].pop.users,
        )
        self.stdout.write(_row("this run: ALS (implicit)", als))
        self.stdout.write(_row("this run: ItemPop", pop))
        self._published(published or data / "published_results.csv", explicit=published)
        mean_train = float(np.mean([r.train_seconds for r in results]))
        self.stdout.write(f"  ALS training: {mean_train:.2f}s per fold (mean)")

        cut = cut if cut is not None else default_cut(ratings)
        try:
            split = evaluate_time_split(ratings, cut, params)
        except ValueError as error:
            self.stdout.write(f"\nTime split at {cut}: skipped ({error})")
            return
        self.stdout.write(
            f"\nTime split at {cut}: {split.train_ratings} ratings before, "
            f"{split.test_ratings} from then on; candidates: every training item minus the "
            "user's own (not comparable with the published rows)"
        )
        self.stdout.write(_row(f"warm users ({split.warm.als.users}): ALS", split.warm.als))
        self.stdout.write(_row(f"warm users ({split.warm.pop.users}): ItemPop", split.warm.pop))
        self.stdout.write(_row(f"cold users ({split.cold.users}): ItemPop", split.cold))
        self.stdout.write(_row(f"all users ({split.all_als.users}): ALS+ItemPop", split.all_als))
        self.stdout.write(_row(f"all users ({split.all_pop.users}): ItemPop", split.all_pop))
        self.stdout.write(f"  ALS training: {split.warm.train_seconds:.2f}s")
        self.stdout.write(f"total {time.perf_counter() - started:.1f}s")

    def _published(self, path: Path, *, explicit: Path | None) -> None:
        if not path.is_file():
            if explicit is not None:
                raise CommandError(f"The published results file does not exist: {path}")
            self.stdout.write("  (no published_results.csv: published rows not shown)")
            return
        with path.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                if not row.get("source", "").startswith("Gorse README"):
                    continue
                try:
                    scores = Scores(float(row["ndcg@10"]), float(row["precision@10"]), 0)
                except (KeyError, ValueError):
                    continue
                name = row.get("model", "?").split(" (")[0]
                self.stdout.write(_row(f"Gorse (published, full 100k): {name}", scores))
