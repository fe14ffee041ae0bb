"""``manage.py experiment_report KEY [--json] [--metric M]``: an experiment's report
(``experiments_app.services.report``) as readable tables, the SRM warning on top."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from experiments_app.services import lifecycle
from experiments_app.services.report import REPORT_METRICS, experiment_report
from inbo.errors import ApplicationError


def _num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:+.2%}"


def _ci(low: Any, high: Any, fmt=_num) -> str:
    return "-" if low is None or high is None else f"[{fmt(low)}, {fmt(high)}]"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render(report: dict[str, Any]) -> str:
    """The report as text: warnings, variants, each metric, guardrails."""
    e = report["experiment"]
    lines = [f"!! {w}" for w in report["warnings"]]
    if lines:
        lines.append("")
    reason = f": {e['stop_reason']}" if e["stop_reason"] else ""
    lines += [
        f"Experiment {e['key']} ({e['status']}{reason})",
        f"  {e['hypothesis']}",
        f"  window {e['started_at'] or 'not started'} -> {e['window_end']}, "
        f"planned {e['planned_days']} days; primary metric {e['primary_metric']}",
    ]
    srm = report["srm"]
    if srm:
        lines.append(
            f"  SRM chi-square {srm['statistic']:.3g}, p = {srm['p_value']:.3g}"
            f"{' (BLOCKING)' if srm['blocking'] else ''}"
        )
    lines += ["", *_table(
        [["variant", "weight", "users", "pages served"]]
        + [[v["key"] + (" (control)" if v["is_control"] else ""), f"{v['weight']}%",
            str(v["users"]), str(v["exposures"])] for v in report["variants"]]
    )]  # fmt: skip
    for key, block in report["metrics"].items():
        roles = ", ".join(block["roles"]) or "secondary"
        lines += ["", f"{key} ({block['kind']}; {roles})"]
        lines += _table(
            [["variant", "users", "mean", "95% CI"]]
            + [[v["variant"], str(v["users"]), _num(v["mean"]), _ci(v["ci_low"], v["ci_high"])]
               for v in block["variants"]]
        )  # fmt: skip
        cuped = {c["variant"]: c for c in (block["cuped"] or {}).get("comparisons", [])}
        rows = [["vs control", "diff", "95% CI", "lift", "95% CI", "p", "CUPED lift",
                 "95% CI", "sequential"]]  # fmt: skip
        for c in block["comparisons"]:
            seq, adj = c.get("sequential"), cuped.get(c["variant"], {})
            rows.append([
                c["variant"], _num(c["diff"]), _ci(c["ci_low"], c["ci_high"]), _pct(c["lift"]),
                _ci(c["lift_ci_low"], c["lift_ci_high"], _pct), _num(c["p_value"], 3),
                _pct(adj.get("lift")), _ci(adj.get("lift_ci_low"), adj.get("lift_ci_high"), _pct),
                (f"z {_num(seq['z'], 3)} / bound {_num(seq['bound'], 3)}"
                 f"{' CROSSED' if seq['crossed'] else ''}") if seq else "-",
            ])  # fmt: skip
        lines += _table(rows)
        if block["cuped"]:
            lines.append(f"CUPED variance reduction {block['cuped']['variance_reduction']:.1%}")
    if report["guardrails"]:
        lines += ["", "guardrails"]
        lines += _table(
            [["metric", "variant", "status", "detail"]]
            + [[g["metric"], g["variant"], g["status"].upper() if g["status"] == "breached"
                else g["status"], g["detail"]] for g in report["guardrails"]]
        )  # fmt: skip
    return "\n".join(lines)


class Command(BaseCommand):
    """Print an experiment's report: a readable table, or ``--json`` (the API's body)."""

    help = "An experiment's report: metrics per variant, lifts, SRM, CUPED, sequential, guardrails."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("key", help="The experiment's key.")
        parser.add_argument("--json", action="store_true", help="The report as JSON.")
        parser.add_argument(
            "--metric", choices=REPORT_METRICS, help="Only this metric (and its daily series)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            experiment = lifecycle.experiment_get(options["key"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        report = experiment_report(experiment, metric=options["metric"])
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(render(report))
