"""``manage.py evaluate_policy``: what a candidate policy would have achieved on the logged
traffic, by IPS, self-normalised IPS and doubly robust estimators
(``experiments_app.services.policy_eval``).

    manage.py evaluate_policy --policy 'weights:{"freshness": 0.8}' --policy reranker:active
    manage.py evaluate_policy --kind bandit --key home-order --policy arm:trending_first \\
        --policy bandit:home-order --since 2026-12-01
"""

from __future__ import annotations

import json
from datetime import datetime, time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from experiments_app.services.policy_eval import PolicyValue, evaluate_policies
from inbo.errors import ApplicationError


def _moment(raw: str | None) -> datetime | None:
    if not raw:
        return None
    moment = parse_datetime(raw)
    if moment is None:
        day = parse_date(raw)
        if day is None:
            raise CommandError(f"{raw!r} is not a date (YYYY-MM-DD) or an ISO 8601 time.")
        moment = datetime.combine(day, time.min)
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def render(values: list[PolicyValue]) -> str:
    first = values[0]
    lines = [
        f"Off-policy evaluation on {first.rows} rewarded decisions ({first.kind} {first.key}); "
        f"the logging policy's observed mean reward {first.observed:.4f}",
        "",
        f"{'policy':<40} {'estimator':<14} {'value':>8}  {'95% interval':<20} "
        f"{'ESS':>8} {'match':>6}",
    ]
    for value in values:
        for e in value.estimates:
            lines.append(
                f"{value.policy[:40]:<40} {e.estimator:<14} {e.value:>8.4f}  "
                f"[{e.ci_low:.4f}, {e.ci_high:.4f}]".ljust(86)
                + f"{e.ess:>8.1f} {value.match_rate:>6.1%}"
            )
    lines += [
        "",
        "ESS: Kish's effective sample size of the importance weights; a small share of the",
        "rows means a few decisions carry the estimate. match: rows where the policy could",
        "have taken the logged action.",
    ]
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Estimate a candidate policy's value on the logged decisions (IPS, SNIPS, DR with "
        "95% intervals and the effective sample size). The logging policy is always shown."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--policy",
            action="append",
            default=[],
            help="exploration slot: weights:default | weights:{json} | reranker:active | "
            "reranker:v<N>; bandit: arm:<arm> | bandit:<key>. Repeat to compare.",
        )
        parser.add_argument("--kind", choices=("explore", "bandit"), default="explore")
        parser.add_argument(
            "--key", default="for_you", help="The bandit's key, or the slot (for_you)."
        )
        parser.add_argument("--since", help="Decisions from this date or time (inclusive).")
        parser.add_argument("--until", help="Decisions before this date or time.")
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args, **options) -> None:
        try:
            values = evaluate_policies(
                options["policy"],
                kind=options["kind"],
                key=options["key"],
                since=_moment(options["since"]),
                until=_moment(options["until"]),
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.message} {exc.details or ''}".strip()) from None
        if options["json"]:
            self.stdout.write(json.dumps([v.to_json() for v in values], indent=2))
        else:
            self.stdout.write(render(values))
