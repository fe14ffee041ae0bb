"""``manage.py experiment_simulate``: a real A/B test on the demo world, driven by simulated
users through the whole product (``experiments_app.traffic``), and its report."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from experiments_app import traffic
from experiments_app.management.commands.experiment_report import render
from inbo.errors import ApplicationError


def _config(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise CommandError(f"--variant-config is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CommandError("--variant-config must be a JSON object.")
    return value


def _start(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise CommandError(f"--start is not an ISO time: {raw!r}") from None
    if moment.tzinfo is None:
        raise CommandError("--start needs a time zone (e.g. 2026-12-07T00:00:00+00:00).")
    return moment


class Command(BaseCommand):
    """Create and start an experiment, simulate a pre-period and the test period on the
    demo world (``seed_demo`` first), stop it and print its report."""

    help = (
        "A live A/B test on the demo world: simulated users browse the real home feed and "
        "report clicks, reads and dismissals; prints the experiment's report."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--key", default=traffic.DEFAULT_KEY, help="The experiment's key.")
        parser.add_argument("--layer", default=traffic.DEFAULT_LAYER)
        parser.add_argument(
            "--variant", default=traffic.DEFAULT_TREATMENT, help="The treatment's key."
        )
        parser.add_argument(
            "--variant-config",
            default=json.dumps(traffic.DEFAULT_CONFIG),
            help='The treatment\'s config (default {"weights": {"freshness": 1.2}}).',
        )
        parser.add_argument(
            "--days",
            type=int,
            default=7,
            help="Simulated days before the start (pre-period) and after it.",
        )
        parser.add_argument("--users", type=int, help="Only the first N demo users.")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--world-seed", type=int, default=42, help="The seed the demo world was made with."
        )
        parser.add_argument(
            "--start", help="The simulated clock's start (ISO time; default the next free hour)."
        )
        parser.add_argument(
            "--items-per-day",
            type=float,
            help="New items published per simulated day (default: the demo world's rate).",
        )
        parser.add_argument("--json", action="store_true", help="The summary and report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["users"] is not None and options["users"] < 1:
            raise CommandError("--users must be at least 1.")
        settings = traffic.Settings(
            key=options["key"],
            layer=options["layer"],
            treatment=options["variant"],
            config=_config(options["variant_config"]),
            days=options["days"],
            users=options["users"],
            seed=options["seed"],
            world_seed=options["world_seed"],
            start=_start(options["start"]),
            items_per_day=options["items_per_day"],
        )
        database = str(connection.settings_dict["NAME"])
        if not options["json"]:
            self.stdout.write(f"database {database}; simulating {settings.key} ...")
        try:
            outcome = traffic.simulate(settings, database=database, stdout=self.stderr)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        if options["json"]:
            self.stdout.write(
                json.dumps({"simulation": outcome.summary(), "report": outcome.report}, indent=2)
            )
            return
        s = outcome.summary()
        kinds = ", ".join(f"{k} {v}" for k, v in s["interactions"].items())
        self.stdout.write(
            f"simulated {s['users']} users, {s['sessions']} home sessions from {s['start']}; "
            f"experiment from {s['experiment_start']} to {s['end']}\n"
            f"interactions: {kinds}; reading progress rows {s['reading_progress_rows']}; "
            f"items published {s['items_published']}; served pages flushed "
            f"{s['served_flushed']}\n"
        )
        self.stdout.write(render(outcome.report))
