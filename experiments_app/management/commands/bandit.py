"""``manage.py bandit``: create, list, show, pause and resume bandits (through the services)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from experiments_app.models import Bandit
from experiments_app.services import decisions
from inbo.errors import ApplicationError


def _arm(value: str) -> tuple[str, list[str]]:
    key, sep, sections = value.partition("=")
    if not sep or not key or not sections:
        raise argparse.ArgumentTypeError(f"expected KEY=section,section,..., got {value!r}")
    return key, [s.strip() for s in sections.split(",") if s.strip()]


def _number(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None


class Command(BaseCommand):
    """Bandits as data from the shell; the same validation as the services."""

    help = (
        "Manage bandits. create KEY --kind thompson|epsilon_greedy|linucb "
        "--arm default=continue_reading,for_you,because_you_read,trending,fresh "
        "--arm trending_first=trending,for_you,... [--epsilon E] [--alpha A] creates one; "
        "list prints them; show KEY prints its state, pulls and mean reward per arm; "
        "pause KEY / resume KEY."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a bandit.")
        create.add_argument("key")
        create.add_argument("--kind", default=Bandit.Kind.THOMPSON, choices=Bandit.Kind.values)
        create.add_argument("--arm", type=_arm, action="append", required=True)
        create.add_argument("--epsilon", type=_number, default=None)
        create.add_argument("--alpha", type=_number, default=None)
        sub.add_parser("list", help="List bandits.")
        for name in ("show", "pause", "resume"):
            sub.add_parser(name, help=f"{name.title()} a bandit.").add_argument("key")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        try:
            if action == "create":
                self._create(**options)
            elif action == "list":
                self._list()
            elif action == "show":
                self._show(options["key"])
            else:
                status = Bandit.Status.PAUSED if action == "pause" else Bandit.Status.ACTIVE
                bandit = decisions.bandit_set_status(options["key"], status)
                self.stdout.write(f"{bandit.key} is {bandit.status}.")
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

    def _create(self, *, key: str, kind: str, arm: list, epsilon, alpha, **_: Any) -> None:
        arms = dict(arm)
        if len(arms) != len(arm):
            raise CommandError("An arm key is given twice.")
        params = {
            name: value
            for name, value in (("epsilon", epsilon), ("alpha", alpha))
            if value is not None
        }
        bandit = decisions.bandit_create(key, kind=kind, arms=arms, params=params)
        self.stdout.write(f"Created {bandit.kind} bandit {bandit.key} with {len(arms)} arms.")

    def _list(self) -> None:
        for bandit in Bandit.objects.order_by("key"):
            self.stdout.write(
                f"{bandit.key:<24} {bandit.kind:<15} {bandit.status:<7} "
                f"arms={','.join(bandit.arm_keys())}"
            )

    def _show(self, key: str) -> None:
        bandit = decisions.bandit_get(key)
        snapshot, arms = decisions.bandit_summary(bandit)
        self.stdout.write(
            f"{bandit.key}: {bandit.kind}, {bandit.status}, params {json.dumps(bandit.params)}"
        )
        if snapshot is not None:
            self.stdout.write(
                f"state: snapshot {snapshot.pk} at {snapshot.taken_at:%Y-%m-%d %H:%M:%S}, "
                f"{snapshot.decisions_applied} decisions applied"
            )
            self.stdout.write(json.dumps(snapshot.state))
        for a in arms:
            mean = "-" if a.mean_reward is None else f"{a.mean_reward:.4f}"
            self.stdout.write(
                f"  {a.arm:<20} pulls={a.pulls:<8} rewarded={a.rewarded:<8} "
                f"mean_reward={mean:<8} order={','.join(a.order)}"
            )
