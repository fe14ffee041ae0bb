"""Guardrails that stop experiments (issue 12; docs/EXPERIMENTS.md "Reading a report").

A guardrail of an experiment is **breached** by a treatment when, with at least
``EXPERIMENTS_GUARDRAIL_MIN_USERS`` users in control and in the treatment:

* ``latency_p95``: the treatment's p95 is more than ``EXPERIMENTS_LATENCY_GUARDRAIL``
  (a fraction, 0.20 = 20%) above control's and the bootstrap interval of the relative change
  excludes 0;
* any other metric: the treatment is worse than control in the harmful direction (higher
  for ``dismiss_rate``, lower for the others) and the sequential boundary (Lan-DeMets
  O'Brien-Fleming, daily looks) was crossed in that direction, so the daily checks keep the
  false-stop rate at 5% per metric over the planned duration.

:func:`check_guardrails` (beat, every 15 minutes: ``inbo.experiments.check_guardrails``)
stops each running experiment with a breached guardrail through ``experiment_stop`` with the
reason, logs an error and sends :data:`experiments_app.contracts.guardrail_stopped`, which
monitoring counts. One run at a time: a PostgreSQL advisory lock (the check reads and
writes only PostgreSQL; a second run while one holds it returns at once).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from experiments_app.contracts import guardrail_stopped
from experiments_app.models import Experiment
from experiments_app.services import lifecycle
from experiments_app.services.metrics import HIGHER_IS_WORSE, LATENCY_P95
from inbo import pg_locks
from inbo.errors import Conflict

logger = logging.getLogger(__name__)

_LOCK_ID = zlib.crc32(b"inbo.experiments.check_guardrails")


def min_users() -> int:
    return int(getattr(settings, "EXPERIMENTS_GUARDRAIL_MIN_USERS", 100))


def latency_threshold() -> float:
    return float(getattr(settings, "EXPERIMENTS_LATENCY_GUARDRAIL", 0.20))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1%}"


def assess(
    metric: str, block: Mapping[str, Any], cmp: Mapping[str, Any], users: Mapping[str, int]
) -> dict[str, Any]:
    """One treatment's guardrail status from its report block and comparison (JSON-ready
    values; ``users``: users per variant key for the minimum)."""
    control = block["variants"][0]
    treated = next(v for v in block["variants"] if v["variant"] == cmp["variant"])
    if metric == LATENCY_P95:  # the p95 is over requests; the minimum is over users
        counts = [users.get(control["variant"], 0), users.get(cmp["variant"], 0)]
    else:
        counts = [control["users"], treated["users"]]
    enough = min(counts) >= min_users()
    higher_is_worse = metric in HIGHER_IS_WORSE
    diff = cmp.get("diff")
    worse = diff is not None and (diff > 0 if higher_is_worse else diff < 0)
    lift = cmp.get("lift")
    if metric == LATENCY_P95:
        low = cmp.get("lift_ci_low")
        breached = (
            enough
            and lift is not None
            and lift > latency_threshold()
            and low is not None
            and low > 0
        )
        detail = (
            f"p95 {treated['mean'] or 0:.0f} ms in {cmp['variant']} vs "
            f"{control['mean'] or 0:.0f} ms in {control['variant']} ({_pct(lift)}, 95% CI "
            f"{_pct(low)} to {_pct(cmp.get('lift_ci_high'))}; limit "
            f"+{latency_threshold():.0%})"
        )
    else:
        seq = cmp.get("sequential") or {}
        crossed = bool(seq.get("crossed_higher" if higher_is_worse else "crossed_lower"))
        breached = enough and worse and crossed
        detail = (
            f"{_g(treated['mean'])} in {cmp['variant']} vs {_g(control['mean'])} in "
            f"{control['variant']} ({_pct(lift)}; z {seq.get('z')}, sequential bound "
            f"{seq.get('bound')}{', crossed' if crossed else ''})"
        )
    if not enough:
        detail += f"; fewer than {min_users()} users per variant, not judged"
    return {
        "metric": metric,
        "variant": cmp["variant"],
        "status": "breached" if breached else "ok",
        "harmful": "higher" if higher_is_worse else "lower",
        "enough_users": enough,
        "detail": detail,
    }


def assess_all(
    experiment: Experiment, blocks: Mapping[str, Any], users: Mapping[str, int]
) -> list[dict[str, Any]]:
    """Every guardrail of ``experiment`` computed in ``blocks``, for every treatment."""
    out = []
    for metric in experiment.guardrails or []:
        block = blocks.get(metric)
        if block is None:
            continue
        for cmp in block["comparisons"]:
            out.append(assess(metric, block, _rounded(cmp), users))
    return out


def _g(value: Any) -> str:
    """A metric's value with four significant digits (the stop reason keeps 300 characters)."""
    return "-" if value is None else f"{value:.4g}"


def _rounded(cmp: Mapping[str, Any]) -> dict[str, Any]:
    """The comparison with readable numbers for the detail line (NaN as None)."""
    seq = cmp.get("sequential")
    out = {k: (None if isinstance(v, float) and v != v else v) for k, v in cmp.items()}
    if seq:
        out["sequential"] = {
            **seq,
            "z": round(seq["z"], 2) if seq.get("z") is not None else None,
            "bound": round(seq["bound"], 2) if seq.get("bound") is not None else None,
        }
    return out


def _advisory_lock() -> AbstractContextManager[bool]:
    return pg_locks.session_lock(_LOCK_ID)


def check_guardrails(*, now: datetime | None = None) -> list[str]:
    """Stop every running experiment that breached a guardrail; returns their keys (empty
    when another check holds the lock)."""
    from experiments_app.services.report import experiment_report  # report imports assess

    stopped: list[str] = []
    with _advisory_lock() as got:
        if not got:
            logger.info("experiments.guardrails_skipped reason=busy")
            return stopped
        running = Experiment.objects.filter(status=Experiment.Status.RUNNING).order_by("id")
        for experiment in running.prefetch_related("variants"):
            if not experiment.guardrails:
                continue
            report = experiment_report(experiment, now=now, metrics=list(experiment.guardrails))
            breached = [g for g in report["guardrails"] if g["status"] == "breached"]
            if not breached:
                continue
            first = breached[0]
            reason = f"guardrail {first['metric']} breached: {first['detail']}"
            try:
                lifecycle.experiment_stop(experiment, at=now or timezone.now(), reason=reason)
            except Conflict:  # stopped meanwhile by an operator
                continue
            logger.error(
                "experiments.guardrail_stop experiment=%s metric=%s variant=%s detail=%s",
                experiment.key,
                first["metric"],
                first["variant"],
                first["detail"],
            )
            guardrail_stopped.send(
                sender=Experiment, experiment=experiment.key, metric=first["metric"]
            )
            stopped.append(experiment.key)
    return stopped
