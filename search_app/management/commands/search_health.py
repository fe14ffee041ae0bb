"""manage.py search_health: is search up, complete and keeping up?"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from search_app import public


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Command(BaseCommand):
    help = (
        "Report the search backend (up, latency), documents in the index vs the catalog "
        "(drift), the indexing outbox (pending, failed, dead, oldest change), the last "
        "successful indexing and settings drift. Exit status 1 when the backend is down "
        "(with --strict also on drift, dead letters or settings drift)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument(
            "--strict", action="store_true", help="Also fail on drift, dead letters, settings."
        )

    def _index(self, label: str, figures: dict[str, Any], database: dict[str, int]) -> None:
        state = self.style.SUCCESS("up") if figures["up"] else self.style.ERROR("DOWN")
        self.stdout.write(f"{label}: {state}, latency {figures['latency_ms']:.1f} ms")
        for doc_type, expected in database.items():
            indexed = figures["documents"].get(doc_type, 0)
            drift = indexed - expected
            mark = self.style.WARNING(f"drift {drift:+d}") if drift else "no drift"
            self.stdout.write(
                f"  {doc_type}: {indexed} indexed / {expected} in the catalog ({mark})"
            )
        settings_drift = self.style.WARNING("yes") if figures["settings_drift"] else "no"
        self.stdout.write(f"  settings drift: {settings_drift}")
        if figures["detail"]:
            self.stdout.write(f"  detail: {figures['detail']}")

    def handle(self, *args: Any, **options: Any) -> None:
        report = public.health()
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, sort_keys=True, default=str))
        else:
            self._index(f"backend {report['backend']}", report, report["database"])
            if report["fallback"]:
                self._index("fallback postgres", report["fallback"], report["database"])
            box = report["outbox"]
            self.stdout.write(
                f"outbox: {box['pending']} pending, {box['in_flight']} in flight, "
                f"{box['failed']} failed (retrying), {box['dead']} dead; oldest change "
                f"waiting: {_age(report['oldest_pending_age_seconds'])}"
            )
            self.stdout.write(
                f"last indexed: {report['last_indexed_at'] or 'never (or Redis lost it)'}"
                f" ({_age(report['last_indexed_age_seconds'])} ago)"
            )
            p95 = report["search_latency_p95_ms"]
            zero = report["zero_result_rate"]
            self.stdout.write(
                f"last 15 min: {report['recent_searches']} searches, p95 "
                f"{'-' if p95 is None else f'{p95:.1f} ms'}, zero results "
                f"{'-' if zero is None else f'{zero:.0%}'}"
            )
        problems = [] if report["up"] else [f"backend {report['backend']} is down"]
        if options["strict"]:
            drift = report["drift"] or {}
            if any(drift.values()):
                problems.append(f"index drift {drift}")
            if report["outbox"]["dead"]:
                problems.append(f"{report['outbox']['dead']} dead letters")
            if report["settings_drift"]:
                problems.append("settings drift")
        if problems:
            raise CommandError("; ".join(problems), returncode=1)
