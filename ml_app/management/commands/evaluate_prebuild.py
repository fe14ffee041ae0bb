"""``manage.py evaluate_prebuild``: predictive caching replayed on DeskDrop's timestamps."""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from experience_app.public import open_times as ot
from ml_app.datasets import deskdrop
from ml_app.management.commands.evaluate_deskdrop import _one
from ml_app.services.prebuild_replay import (
    Config,
    Outcome,
    Replay,
    ReplayError,
    evaluate,
    tune,
    tune_minimum,
)


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


class Command(BaseCommand):
    help = (
        "Replays the opens of DeskDrop (users_interactions*.csv in --data; an open is a "
        "reader's first event after 30 minutes without one) against prebuild runs every "
        "--interval seconds: the share of opens, and of morning opens (06:00-10:00 in the "
        "reader's zone), served from a pre-built feed, and the feeds built per open, for the "
        "likelihood policy of the beat task and two baselines (most recently active, random) "
        "at each budget. The likelihood's parameters are tuned on the period between the 60%% "
        "and 80%% time points; the figures are those of the later 20%%, held back."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", required=True, type=Path, help="Folder of the CSV files.")
        parser.add_argument(
            "--budgets",
            default="10,20,40,80",
            help="Feeds per run to compare, comma-separated (default: 10,20,40,80).",
        )
        parser.add_argument(
            "--tune-budget", type=int, default=10, help="Budget the tuning runs at (10)."
        )
        parser.add_argument("--interval", type=int, default=600, help="Seconds between runs.")
        parser.add_argument("--lookahead", type=float, default=30.0, help="Minutes ahead (30).")
        parser.add_argument(
            "--ttl", type=int, help="Seconds a pre-built feed lives (default: lookahead+interval)."
        )
        parser.add_argument(
            "--minimum",
            type=float,
            help="The likelihood policy builds for no reader scoring less (default: tuned, "
            "the highest floor that serves half the tuning period's morning opens at the "
            "largest budget; 0 with --no-tune).",
        )
        parser.add_argument(
            "--no-tune", action="store_true", help="Report with the serving defaults."
        )
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")

    def handle(self, *args: object, **options: object) -> None:
        data = options["data"]
        assert isinstance(data, Path)
        if not data.is_dir():
            raise CommandError(f"--data is not a folder: {data}")
        path = _one(data, "users_interactions*.csv")
        if path is None:
            raise CommandError(f"no users_interactions*.csv in {data}")
        try:
            budgets = [int(b) for b in str(options["budgets"]).split(",") if b.strip()]
        except ValueError:
            raise CommandError("--budgets takes integers, e.g. 5,10,20") from None
        if not budgets or min(budgets) < 1:
            raise CommandError("--budgets must be 1 or more")
        interval = int(options["interval"])  # type: ignore[call-overload]
        lookahead = float(options["lookahead"])  # type: ignore[arg-type]
        if interval < 60 or lookahead <= 0:
            raise CommandError("--interval must be 60 or more and --lookahead above 0")
        ttl = int(str(options["ttl"] or int(lookahead * 60 + interval)))
        given = options["minimum"]
        minimum = float(given) if given is not None else 0.0  # type: ignore[arg-type]
        config = Config(budgets[0], interval, lookahead, ttl, minimum)
        try:
            read = deskdrop.read_interactions(path)
            for row in read.skipped:
                self.stderr.write(str(row), style_func=self.style.WARNING)
            replay = Replay.of(read.rows)
            first, last = float(replay.ts[0]), float(replay.ts[-1]) + 1
            tune_start = first + 0.6 * (last - first)
            report_start = first + 0.8 * (last - first)
            params = ot.DEFAULT
            tuned: list = []
            floors: list = []
            if not options["no_tune"]:
                print(f"Tuning on {_day(tune_start)} .. {_day(report_start)}", file=sys.stderr)
                tuned = tune(
                    replay,
                    start=tune_start,
                    end=report_start,
                    budget=int(options["tune_budget"]),  # type: ignore[call-overload]
                    config=config,
                )
                params = tuned[0][0]
                if given is None:
                    minimum, floors = tune_minimum(
                        replay,
                        start=tune_start,
                        end=report_start,
                        budget=max(budgets),
                        config=config,
                        params=params,
                    )
                    config = dataclasses.replace(config, minimum=minimum)
            print(f"Reporting on {_day(report_start)} .. {_day(last)}", file=sys.stderr)
            outcomes = evaluate(
                replay,
                start=report_start,
                end=last,
                budgets=budgets,
                config=config,
                params=params,
            )
        except (deskdrop.RowError, ReplayError) as error:
            raise CommandError(str(error)) from error
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read a file: {error}") from error
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "config": asdict(config),
                        "tune": [(asdict(p), _row(o)) for p, o in tuned],
                        "floors": [(m, _row(o)) for m, o in floors],
                        "params": asdict(params),
                        "report_start": report_start,
                        "end": last,
                        "outcomes": [_row(o) for o in outcomes],
                    },
                    indent=2,
                )
            )
            return
        lines = [
            f"DeskDrop: {len(replay.ts)} events, {len(replay.users)} readers, "
            f"{_day(first)} .. {_day(last)}. Runs every {interval} s, lookahead {lookahead:g} "
            f"min, pre-built feeds kept {ttl} s, likelihood at least {config.minimum:g}.",
        ]
        if tuned:
            lines += [
                f"Tuned on {_day(tune_start)} .. {_day(report_start)} at budget "
                f"{options['tune_budget']} (best 5 of {len(tuned)}; morning share, share):",
                *(
                    f"  day_mix {p.day_mix:g} flat_prior {p.flat_prior:g} recency_days "
                    f"{p.recency_days:g}: {o.morning_share:.1%}, {o.share:.1%}"
                    for p, o in tuned[:5]
                ),
            ]
        if floors:
            lines += [
                f"Likelihood floor at budget {max(budgets)} on the same period (morning share, "
                "share, built per open):",
                *(
                    f"  {m:g}: {o.morning_share:.1%}, {o.share:.1%}, {o.built_per_open:.2f}"
                    for m, o in floors
                ),
            ]
        lines += [
            f"Held back: {_day(report_start)} .. {_day(last)}; {outcomes[0].opens} opens, "
            f"{outcomes[0].morning_opens} in the morning; {outcomes[0].mean_candidates:.0f} "
            "readers seen within 35 days per run (mean).",
            "",
            *render(outcomes),
        ]
        for line in lines:
            self.stdout.write(line)


def _row(o: Outcome) -> dict[str, object]:
    return {
        **asdict(o),
        "share": o.share,
        "morning_share": o.morning_share,
        "built_per_open": o.built_per_open,
        "wasted": o.wasted,
    }


def render(outcomes: list[Outcome]) -> list[str]:
    head = "budget  policy       served   share  morning  built/open  wasted"
    lines = [head]
    for o in outcomes:
        lines.append(
            f"{o.budget:>6}  {o.policy:<11} {o.served:>7}  {o.share:6.1%}  "
            f"{o.morning_share:7.1%}  {o.built_per_open:10.2f}  {o.wasted:6.1%}"
        )
    return lines
