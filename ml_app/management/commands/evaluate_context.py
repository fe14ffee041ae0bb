"""``manage.py evaluate_context``: time and place signals measured on DeskDrop (issue 13)."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from experience_app.public import Weights
from experience_app.public import time_place as tp
from ml_app.datasets import deskdrop
from ml_app.management.commands.evaluate_deskdrop import _one
from ml_app.services.deskdrop_context import (
    ContextEvaluationError,
    ContextResult,
    evaluate_context,
)


class Command(BaseCommand):
    help = (
        "nDCG@10 on DeskDrop (users_interactions*.csv and, for languages, articles*.csv in "
        "--data) of the ranking with and without the time signals (hour_match, "
        "item_hour_lift) and the place signals (region_popularity, language_match), beside "
        "the popularity baseline: counters built before the cut (the 80%% time point), each "
        "test session ranked at its start with the serving signal functions and weights."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", required=True, type=Path, help="Folder of the CSV files.")
        parser.add_argument("--cut", type=int, help="Unix time of the split (default: 80%%).")
        parser.add_argument(
            "--bootstrap",
            type=int,
            default=1000,
            help="Resamples of the test sessions for 95%% intervals (default: 1000; 0: none).",
        )
        parser.add_argument("--seed", type=int, default=0, help="Bootstrap seed (default: 0).")
        parser.add_argument(
            "--signal-weight",
            type=float,
            help="Weigh each of the four signals this much (default: the settings' weights).",
        )
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")

    def handle(self, *args: object, **options: object) -> None:
        data = options["data"]
        assert isinstance(data, Path)
        if not data.is_dir():
            raise CommandError(f"--data is not a folder: {data}")
        bootstrap = int(options["bootstrap"])  # type: ignore[call-overload]
        if bootstrap < 0:
            raise CommandError("--bootstrap must be 0 or more")
        path = _one(data, "users_interactions*.csv")
        if path is None:
            raise CommandError(f"no users_interactions*.csv in {data}")
        articles_path = _one(data, "articles*.csv")
        try:
            read = deskdrop.read_interactions(path)
            for row in read.skipped:
                self.stderr.write(str(row), style_func=self.style.WARNING)
            articles = deskdrop.read_articles(articles_path).rows if articles_path else []
            weights = Weights.from_settings()
            if options["signal_weight"] is not None:
                same = float(options["signal_weight"])  # type: ignore[arg-type]
                weights = dataclasses.replace(weights, **dict.fromkeys(SIGNALS, same))
            result = evaluate_context(
                read.rows,
                articles,
                cut=options["cut"],  # type: ignore[arg-type]
                bootstrap=bootstrap,
                seed=int(options["seed"]),  # type: ignore[call-overload]
                weights=weights,
                progress=lambda line: print(line, file=sys.stderr),
            )
        except (deskdrop.RowError, ContextEvaluationError) as error:
            raise CommandError(str(error)) from error
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read a file: {error}") from error
        if options["json"]:
            self.stdout.write(json.dumps(asdict(result), indent=2))
            return
        for line in render(result):
            self.stdout.write(line)


SIGNALS = tp.SIGNALS


def render(r: ContextResult) -> list[str]:
    when = datetime.fromtimestamp(r.cut, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Cut {r.cut} ({when}): {r.train_interactions} interactions before, "
        f"{r.test_interactions} replayed after.",
        f"Test sessions with an item new to their reader: {r.episodes}; relevant items "
        f"{r.relevant}, {r.reachable} ({r.reachable / max(1, r.relevant):.1%}) among the "
        f"candidates (mean {r.mean_candidates:.0f} per session).",
        f"Readers with a country: {r.with_country / r.episodes:.1%} of sessions; with a "
        f"language: {r.with_language / r.episodes:.1%}; candidates with a known language: "
        f"{r.candidates_with_language:.1%}.",
        "Weights: " + ", ".join(f"{name} {w:g}" for name, w in r.weights.items()) + ".",
        "",
    ]
    width = max(len(name) for name in r.ndcg)
    ci = r.bootstrap > 0
    head = f"{'ranking':<{width}}  nDCG@10"
    if ci:
        head += "  95% interval       minus base (paired 95%)"
    lines.append(head)
    for name, f in r.ndcg.items():
        line = f"{name:<{width}}  {f.mean:.4f}"
        if ci:
            g = r.gap[name]
            line += f"   [{f.low:.4f}, {f.high:.4f}]  {g.mean:+.4f} [{g.low:+.4f}, {g.high:+.4f}]"
        lines.append(line)
    return lines
