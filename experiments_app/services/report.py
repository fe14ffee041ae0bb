"""An experiment's report (issue 12; docs/EXPERIMENTS.md "Reading a report").

``experiment_report(experiment, now=None, metric=None)`` returns a JSON-ready dict:

```
{
  "experiment": {key, status, hypothesis, primary_metric, guardrails, started_at,
                 stopped_at, stop_reason, planned_days, window_end},
  "generated_at": iso time,
  "warnings": [str],         # the SRM warning first when blocking: do not read the results
  "srm": {statistic, p_value, blocking} | null,       # null: fewer than 2 exposed users
  "variants": [{key, is_control, weight, users, exposures}],   # control first
  "metrics": {metric: {
      "kind": "ratio" | "count" | "mean" | "p95",
      "roles": ["primary" | "guardrail"],
      "variants": [{variant, users, mean, ci_low, ci_high}],
      "comparisons": [{variant, diff, ci_low, ci_high, lift, lift_ci_low, lift_ci_high,
                       p_value, z, significant, sequential: {...} | null}],
      "cuped": {theta, variance_reduction, comparisons: [...]} | null}},
  "guardrails": [{metric, variant, status: "ok" | "breached", harmful, enough_users,
                  detail}],
  "series": {"metric": m, "points": [{variant, date, lift, ci_low, ci_high, z, bound}]},
}
```

``users`` is the users a metric is computed on (all exposed users, but for ``mean_depth``
and ``session_length`` only those with a reading or a session); for ``latency_p95`` it is
the served pages with a latency, ``mean`` their p95. ``exposures`` is the home pages served
under the variant. Sequential: one look per day since the start (the end of each day, the
last at the window's end), information fraction = elapsed / planned duration.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from experiments_app import stats
from experiments_app.models import Experiment
from experiments_app.services import analysis, guardrails
from experiments_app.services.metrics import (
    KINDS,
    LATENCY_P95,
    LatencySamples,
    latency_samples,
    metric_data,
    population,
)

# The model has no planned duration yet: every experiment is read against two weeks.
DEFAULT_PLANNED_DAYS = 14
REPORT_METRICS = (*KINDS, LATENCY_P95)


def planned_days(experiment: Experiment) -> int:
    return int(getattr(experiment, "planned_days", None) or DEFAULT_PLANNED_DAYS)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def experiment_report(
    experiment: Experiment,
    *,
    now: datetime | None = None,
    metric: str | None = None,
    metrics: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The report of ``experiment`` at ``now``: every metric, or only ``metric`` (a key of
    ``REPORT_METRICS``; its daily series then replaces the primary metric's), or only
    ``metrics`` (the guardrail check: no other metric is computed)."""
    if metric is not None and metric not in REPORT_METRICS:
        raise ValueError(f"unknown metric {metric!r}")
    now = now or timezone.now()
    pop = population(experiment, now=now)
    variants = sorted(experiment.variants.all(), key=lambda v: (not v.is_control, v.id))
    arms = [(v.id, v.key) for v in variants]
    users = {v.id: int((pop.variant_ids == v.id).sum()) for v in variants}
    latency = latency_samples(experiment, pop)

    warnings: list[str] = []
    srm: dict[str, Any] | None = None
    # A variant of weight 0 has no expected users: one that has any is a mismatch by itself.
    weighted = [v for v in variants if v.weight > 0]
    result: stats.SrmResult | None = None
    if any(users[v.id] for v in variants if v.weight == 0):
        result = stats.SrmResult(statistic=float("inf"), p_value=0.0, blocking=True)
    elif len(weighted) >= 2 and pop.size >= 2:
        result = stats.srm([users[v.id] for v in weighted], [v.weight for v in weighted])
    if result is not None:
        srm = {"statistic": result.statistic, "p_value": result.p_value,
               "blocking": result.blocking}  # fmt: skip
        if result.blocking:
            warnings.append(
                f"Sample ratio mismatch (chi-square p = {result.p_value:.2g} < "
                f"{stats.SRM_BLOCKING_P}): the users per variant do not follow the weights. "
                "Do not read the results: find the cause (assignment, exposure logging, a "
                "variant that fails) first."
            )
    if pop.size == 0:
        warnings.append("No exposed users yet.")

    wanted = [metric] if metric else list(metrics or REPORT_METRICS)
    roles: dict[str, list[str]] = {m: [] for m in wanted}
    if experiment.primary_metric in roles:
        roles[experiment.primary_metric].append("primary")
    for g in experiment.guardrails or []:
        if g in roles:
            roles[g].append("guardrail")
    if metric is None and metrics is None and not roles[LATENCY_P95]:
        wanted.remove(LATENCY_P95)  # serving health is read when it is a guardrail
        del roles[LATENCY_P95]

    looks = pop.look_times()
    span = timedelta(days=planned_days(experiment)).total_seconds()
    fractions = [max((t - pop.start).total_seconds() / span, 1e-6) for t in looks]
    series_metric = metric or experiment.primary_metric
    series: list[dict[str, Any]] = []

    data = metric_data(experiment, pop, [m for m in wanted if m in KINDS])
    blocks: dict[str, Any] = {}
    pending: list[tuple[dict[str, Any], list[float]]] = []  # comparisons and their z paths
    for key in wanted:
        if key == LATENCY_P95:
            blocks[key] = _latency(latency, arms, roles[key])
            continue
        d = data[key]
        block = analysis.analyse(d, pop.variant_ids, arms)
        paths: dict[str, list[float]] = {k: [] for _, k in arms[1:]}
        for k, t in enumerate(looks, start=1):
            present = pop.exposed_at < t.timestamp()
            at_look = analysis.analyse(d, pop.variant_ids, arms, day=k, present=present)
            for cmp in at_look["comparisons"]:
                paths[cmp["variant"]].append(float(cmp["z"] or 0.0))
                if key == series_metric:
                    series.append(
                        {
                            "variant": cmp["variant"],
                            "date": t.date().isoformat(),
                            "lift": cmp["lift"],
                            "ci_low": cmp["lift_ci_low"],
                            "ci_high": cmp["lift_ci_high"],
                            "z": cmp["z"],
                        }
                    )
        for cmp in block["comparisons"]:
            cmp["sequential"] = None
            pending.append((cmp, paths[cmp["variant"]]))
        blocks[key] = {
            "kind": d.kind,
            "roles": roles[key],
            **block,
            "cuped": analysis.cuped(d, pop.variant_ids, arms),
        }

    if pending and looks:
        results, bounds = analysis.sequential([path for _, path in pending], fractions)
        for (cmp, _), outcome in zip(pending, results, strict=True):
            cmp["sequential"] = outcome
        per_variant: dict[str, int] = {}
        for point in series:
            i = per_variant.get(point["variant"], 0)
            point["bound"] = bounds[i]
            per_variant[point["variant"]] = i + 1
    checks = guardrails.assess_all(experiment, blocks, {v.key: users[v.id] for v in variants})
    report = {
        "experiment": {
            "key": experiment.key,
            "status": experiment.status,
            "hypothesis": experiment.hypothesis,
            "primary_metric": experiment.primary_metric,
            "guardrails": list(experiment.guardrails or []),
            "started_at": _iso(experiment.started_at),
            "stopped_at": _iso(experiment.stopped_at),
            "stop_reason": experiment.stop_reason,
            "planned_days": planned_days(experiment),
            "window_end": _iso(pop.end),
        },
        "generated_at": now.isoformat(),
        "warnings": warnings,
        "srm": srm,
        "variants": [
            {
                "key": v.key,
                "is_control": v.is_control,
                "weight": v.weight,
                "users": users[v.id],
                "exposures": latency.served.get(v.id, 0),
            }
            for v in variants
        ],
        "metrics": blocks,
        "guardrails": checks,
        "series": {"metric": series_metric, "points": series},
    }
    return dict(analysis.clean(report))


def _latency(
    latency: LatencySamples, arms: list[tuple[int, str]], roles: list[str]
) -> dict[str, Any]:
    control_id = arms[0][0]
    return {
        "kind": "p95",
        "roles": roles,
        "variants": [analysis.latency_summary(latency.latency_ms.get(vid), k) for vid, k in arms],
        "comparisons": [
            {
                **analysis.latency_compare(
                    latency.latency_ms.get(control_id), latency.latency_ms.get(vid), k
                ),
                "sequential": None,
            }
            for vid, k in arms[1:]
        ],
        "cuped": None,
    }
