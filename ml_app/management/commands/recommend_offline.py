"""``manage.py recommend_offline``: top-50 unseen recommendations for a later period's users."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.services.deskdrop_offline import recommend_offline_deskdrop
from ml_app.services.movielens_offline import TOP_N, recommend_offline_movielens

DATASETS = ("movielens", "deskdrop")


class Command(BaseCommand):
    help = (
        "Train the shipped pipeline on --train (in the dataset's own format) and write the "
        f"top-{TOP_N} unseen items for every user of --test, one line 'user_id item_1 ... "
        f"item_{TOP_N}' per user, ids as in the files. Only the user ids of --test are read, "
        "never its items. MovieLens: ALS for warm users; DeskDrop: the learned ranker "
        "(candidates, then LightGBM; --baseline: time-decayed popularity), less what the user "
        "already read. Users without training data (cold) get the "
        "training popularity ranking; warm and cold counts are printed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dataset", required=True, choices=DATASETS)
        parser.add_argument("--train", required=True, type=Path, help="Training file.")
        parser.add_argument("--test", required=True, type=Path, help="File whose users to serve.")
        parser.add_argument("--out", required=True, type=Path, help="Output file.")
        parser.add_argument(
            "--baseline",
            action="store_true",
            help="DeskDrop only: serve time-decayed popularity instead of the learned ranker.",
        )

    def handle(
        self, *args: object, dataset: str, train: Path, test: Path, out: Path, **options: object
    ) -> None:
        for label, path in (("train", train), ("test", test)):
            if not path.is_file():
                raise CommandError(f"The {label} file does not exist or is not a file: {path}")
        if dataset == "deskdrop":
            self._deskdrop(train, test, out, baseline=bool(options.get("baseline")))
            return
        try:
            result = recommend_offline_movielens(train, test, out)
        except ValueError as error:
            raise CommandError(str(error)) from error
        for label, report in (("train", result.train_report), ("test", result.test_report)):
            for number, reason in report.bad[:20]:
                self.stderr.write(f"{label} file line {number}: {reason}")
            if len(report.bad) > 20:
                self.stderr.write(f"{label} file: {len(report.bad) - 20} more bad lines")
        self.stdout.write(
            f"{dataset}: wrote {result.warm + result.cold} users to {out} "
            f"(warm {result.warm}: ALS; cold {result.cold}: popularity)"
        )

    def _deskdrop(self, train: Path, test: Path, out: Path, *, baseline: bool) -> None:
        try:
            result = recommend_offline_deskdrop(train, test, out, baseline=baseline)
        except ValueError as error:
            raise CommandError(str(error)) from error
        for skipped in result.skipped[:20]:
            self.stderr.write(str(skipped))
        if len(result.skipped) > 20:
            self.stderr.write(f"train file: {len(result.skipped) - 20} more skipped rows")
        t = result.timings
        served = (
            "time-decayed popularity"
            if t is None
            else f"learned ranker, cold: decayed popularity; ALS {t.als_s:.2f} s, "
            f"LightGBM {t.lgbm_s:.2f} s, fit {t.total_s:.2f} s"
        )
        self.stdout.write(
            f"deskdrop: wrote {result.warm + result.cold} users to {out} "
            f"(warm {result.warm}, cold {result.cold}; {served}; unseen only)"
        )
