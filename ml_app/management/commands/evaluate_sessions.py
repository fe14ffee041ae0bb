"""``manage.py evaluate_sessions``: next-read session models compared on DeskDrop (ML-005)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ml_app import session_models
from ml_app.datasets import deskdrop
from ml_app.management.commands.evaluate_deskdrop import _one
from ml_app.session_gru import GRU4Rec
from ml_app.session_models import SessionEvaluation, SessionEvaluationError


class Command(BaseCommand):
    help = (
        "Session-based next-item models on DeskDrop's users_interactions*.csv in --data: "
        "sessions by sessionId (or 30-minute gaps), a time split by session start (last 20%% "
        "of sessions are test; models fit on earlier sessions only), every next item of every "
        "test session predicted from its prefix. Prints HR@20, MRR@20, coverage and fit time "
        "for popularity, last-item co-occurrence and transitions, SKNN, V-SKNN and GRU4Rec."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", required=True, type=Path, help="Folder of the CSV files.")
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
        parser.add_argument(
            "--epochs", type=int, default=10, help="GRU4Rec epochs (default: 10; 0 skips it)."
        )
        parser.add_argument(
            "--seed", type=int, default=0, help="GRU4Rec and bootstrap seed (default: 0)."
        )
        parser.add_argument(
            "--bootstrap",
            type=int,
            default=1000,
            help="Resamples of the test sessions for 95%% intervals (default: 1000; 0: none).",
        )
        parser.add_argument(
            "--gap-sessions",
            action="store_true",
            help="Ignore sessionId and split each user's events at 30-minute gaps.",
        )
        parser.add_argument(
            "--streaming",
            action="store_true",
            help="Replay the test period in time order: the incremental models (all but "
            "GRU4Rec, frozen at the cut) also learn each test session once it has closed.",
        )

    def handle(self, *args: object, **options: object) -> None:
        data = options["data"]
        assert isinstance(data, Path)
        if not data.is_dir():
            raise CommandError(f"--data is not a folder: {data}")
        epochs = int(options["epochs"])  # type: ignore[call-overload]
        bootstrap = int(options["bootstrap"])  # type: ignore[call-overload]
        if epochs < 0 or bootstrap < 0:
            raise CommandError("--epochs and --bootstrap must be 0 or more")
        path = _one(data, "users_interactions*.csv")
        if path is None:
            raise CommandError(f"no users_interactions*.csv in {data}")
        try:
            read = deskdrop.read_interactions(path)
            for row in read.skipped:
                self.stderr.write(str(row), style_func=self.style.WARNING)
            sessions = session_models.build_sessions(
                read.rows, use_session_ids=not options["gap_sessions"]
            )
            split = session_models.time_split(sessions)
            models = session_models.baselines()
            if epochs:
                models.append(GRU4Rec(epochs=epochs, seed=int(options["seed"])))  # type: ignore[call-overload]
            result = session_models.evaluate(
                split,
                models,
                streaming=bool(options["streaming"]),
                bootstrap=bootstrap,
                seed=int(options["seed"]),  # type: ignore[call-overload]
                progress=lambda line: print(line, file=sys.stderr),
            )
        except (deskdrop.RowError, SessionEvaluationError) as error:
            raise CommandError(str(error)) from error
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read a file: {error}") from error
        if options["json"]:
            payload = asdict(result) | {"winner": result.winner().name}
            self.stdout.write(json.dumps(payload, indent=2))
            return
        for line in render(result, sessions=len(sessions), skipped=len(read.skipped)):
            self.stdout.write(line)


def render(result: SessionEvaluation, *, sessions: int, skipped: int = 0) -> list[str]:
    r = result
    when = datetime.fromtimestamp(r.cut, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    share = r.unseen_targets / max(1, r.points)
    lines = [
        f"{sessions} sessions of 2+ items; {skipped} rows skipped.",
        f"Cut {r.cut} ({when}): {r.train_sessions} training sessions ({r.train_items} items), "
        f"{r.test_sessions} test sessions.",
        f"Prediction points: {r.points}; {r.unseen_targets} ({share:.1%}) targets unseen in "
        f"training (kept as misses: a model frozen at the cut has HR@{r.k} at most "
        f"{1 - share:.4f}).",
    ]
    if r.streaming:
        lines.append(
            "Streaming: models marked * also learn each test session once it has closed "
            "(30 minutes after its last event); the others are frozen at the cut."
        )
    lines.append("")
    # Frozen models always miss unseen targets, so their HR on seen targets is a rescaling
    # (not printed when streaming: a model that learned a test session can hit unseen ones).
    seen = max(1, r.points - r.unseen_targets) / max(1, r.points)
    names = {m.name: m.name + (" *" if m.updated else "") for m in r.results}
    width = max(len(name) for name in names.values())
    last = "" if r.streaming else f"  HR@{r.k} on seen targets"
    lines.append(
        f"{'model':<{width}}  HR@{r.k:<4}  MRR@{r.k:<3}  coverage  fit s   predict s{last}"
    )
    for m in r.results:
        tail = "" if r.streaming else f"  {m.hr / seen:.4f}"
        lines.append(
            f"{names[m.name]:<{width}}  {m.hr:.4f}  {m.mrr:.4f}  {m.coverage:8.4f}  "
            f"{m.fit_seconds:6.1f}  {m.predict_seconds:9.1f}{tail}"
        )
    if r.bootstrap:
        lines += [
            "",
            f"95% intervals ({r.bootstrap} resamples of the test sessions); the best by "
            f"MRR@{r.k} ({r.winner().name}) minus each model, paired:",
        ]
        for m in r.results:
            cells = [m.hr_interval, m.mrr_interval, m.hr_gap_interval, m.mrr_gap_interval]
            signs = ["", "", "+", "+"]  # the gaps carry their sign
            shown = [
                "[n/a]" if c is None else f"[{c[0]:{sign}.4f}, {c[1]:{sign}.4f}]"
                for c, sign in zip(cells, signs, strict=True)
            ]
            lines.append(
                f"{names[m.name]:<{width}}  HR@{r.k} {shown[0]}  MRR@{r.k} {shown[1]}  "
                f"gap HR {shown[2]}  gap MRR {shown[3]}"
            )
    best = r.winner()
    by_hr = max(r.results, key=lambda m: (m.hr, m.mrr))
    lines.append("")
    lines.append(
        f"Best MRR@{r.k}: {best.name} ({best.mrr:.4f}); best HR@{r.k}: {by_hr.name} "
        f"({by_hr.hr:.4f})."
    )
    return lines
