"""``manage.py evaluate_deskdrop``: time-split evaluation of baselines on DeskDrop files."""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app.datasets import deskdrop
from ml_app.services import deskdrop_baselines as baselines
from ml_app.services.deskdrop_evaluation import (
    GROUPS,
    METHOD_LABELS,
    METHODS,
    DeskdropEvaluationError,
    DeskdropResult,
    evaluate,
)


def parse_cut(value: str) -> int:
    """Unix seconds, or an ISO date/datetime (UTC when no zone is given)."""
    if value.strip().lstrip("-").isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CommandError(f"--cut {value!r} is neither Unix seconds nor an ISO date") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _one(directory: Path, pattern: str) -> Path | None:
    found = sorted(directory.glob(pattern))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise CommandError(f"{directory} holds several {pattern} files ({names}); keep one")
    return found[0] if found else None


class Command(BaseCommand):
    help = (
        "Time-split evaluation on DeskDrop files (users_interactions*.csv, and with --articles "
        "articles*.csv) in --data: baselines and the learned ranker are fitted on the "
        "interactions before the cut and rank the candidate catalog (articles available at "
        "the cut) for each user with a test interaction on it, less what the user engaged "
        "with before the cut. Prints nDCG@10, HR@10 and MRR with bootstrap 95%% intervals, "
        "for all, warm and cold users, and the learned ranker's training times."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", required=True, type=Path, help="Folder of the CSV files.")
        parser.add_argument(
            "--cut",
            type=parse_cut,
            default=None,
            help="Train before this moment (Unix seconds or ISO date, UTC), test from it. "
            "Default: the point leaving the last 20%% of interactions by time as test.",
        )
        parser.add_argument(
            "--articles",
            action="store_true",
            help="Also read articles*.csv: share times and CONTENT REMOVED events shape the "
            "catalog. Only with a complete shared_articles.csv: the development subset holds "
            "the year's most-read articles, so its membership would leak the future.",
        )
        parser.add_argument(
            "--half-life-days",
            type=float,
            default=baselines.DEFAULT_HALF_LIFE_DAYS,
            help="Half-life of the decayed popularity (default: %(default)s days).",
        )
        parser.add_argument(
            "--bootstrap", type=int, default=1000, help="Bootstrap resamples (default: 1000)."
        )
        parser.add_argument("--seed", type=int, default=0, help="Bootstrap seed (default: 0).")
        parser.add_argument(
            "--methods",
            default=",".join(METHODS),
            help=f"Comma-separated methods among {', '.join(METHODS)} (default: all).",
        )

    def handle(self, *args: object, **options: object) -> None:
        data = options["data"]
        assert isinstance(data, Path)
        if not data.is_dir():
            raise CommandError(f"--data is not a folder: {data}")
        methods = [m.strip() for m in str(options["methods"]).split(",") if m.strip()]
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise CommandError(f"unknown methods {unknown}; choose among {METHODS}")
        half_life = float(options["half_life_days"])  # type: ignore[arg-type]
        samples = int(options["bootstrap"])  # type: ignore[call-overload]
        if not half_life > 0 or samples < 1:
            raise CommandError("--half-life-days and --bootstrap must be positive")
        interactions_path = _one(data, "users_interactions*.csv")
        if interactions_path is None:
            raise CommandError(f"no users_interactions*.csv in {data}")
        try:
            read = deskdrop.read_interactions(interactions_path)
            articles: list[deskdrop.Article] = []
            skipped = list(read.skipped)
            if options["articles"]:
                articles_path = _one(data, "articles*.csv") or _one(data, "shared_articles*.csv")
                if articles_path is None:
                    raise CommandError(f"--articles: no articles*.csv in {data}")
                read_articles = deskdrop.read_articles(articles_path)
                articles, skipped = read_articles.rows, skipped + read_articles.skipped
            for row in skipped:
                self.stderr.write(str(row), style_func=self.style.WARNING)
            result = evaluate(
                read.rows,
                articles,
                cut=options["cut"],  # type: ignore[arg-type]
                methods=methods,
                half_life_days=half_life,
                bootstrap=samples,
                seed=int(options["seed"]),  # type: ignore[call-overload]
                progress=sys.stderr,
            )
        except (deskdrop.RowError, DeskdropEvaluationError) as error:
            raise CommandError(str(error)) from error
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read a file: {error}") from error
        for line in render(result, methods, skipped=len(skipped)):
            self.stdout.write(line)


def _fmt(value: float) -> str:
    return "   n/a" if math.isnan(value) else f"{value:.4f}"


def render(result: DeskdropResult, methods: list[str], *, skipped: int = 0) -> list[str]:
    r = result
    when = datetime.fromtimestamp(r.cut, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        f"Cut {r.cut} ({when}); {skipped} rows skipped.",
        f"Train: {r.train.interactions} interactions, {r.train.users} users, "
        f"{r.train.items} items.",
        f"Test:  {r.test.interactions} interactions, {r.test.users} users, {r.test.items} items.",
        f"Candidate catalog at the cut: {r.catalog} items; {r.test_on_catalog} test "
        f"interactions on catalog items the user had not engaged with.",
        f"Evaluated users: {r.users['all']} ({r.users['warm']} warm, seen before the cut; "
        f"{r.users['cold']} cold). Decayed popularity half-life {r.half_life_days:g} days; "
        f"bootstrap 95% intervals over {r.bootstrap} user resamples.",
    ]
    width = max(len(METHOD_LABELS[m]) for m in methods)
    for group in GROUPS:
        lines += [
            "",
            f"{group} users ({r.users[group]}):",
            f"  {'method':<{width}}  {'nDCG@10':<24}  {'HR@10':<24}  {'MRR':<24}",
        ]
        for method in methods:
            cells = []
            for metric in ("ndcg10", "hr10", "mrr"):
                f = r.figures[group][method][metric]
                cells.append(f"{_fmt(f.mean)} [{_fmt(f.low)}, {_fmt(f.high)}]".ljust(24))
            lines.append(f"  {METHOD_LABELS[method]:<{width}}  " + "  ".join(cells))
    if r.timings is not None:
        t = r.timings
        lines += [
            "",
            f"Learned model training: ALS {t.als_s:.2f} s, LightGBM {t.lgbm_s:.2f} s, "
            f"whole fit {t.total_s:.2f} s (one thread).",
        ]
    return lines
