"""The admin's report page of one experiment (``.../experiment/<id>/report/``): the report's
tables and the SVG plot of the cumulative lift with its confidence band. Numbers are
formatted here, the template escapes every text, the SVG comes from
:mod:`experiments_app.plot` (which escapes its own)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.template.response import TemplateResponse
from django.utils.safestring import mark_safe

from experiments_app.plot import lift_svg
from experiments_app.services.report import REPORT_METRICS, experiment_report

TEMPLATE = "admin/experiments_app/experiment/report.html"


def _num(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value:+.2%}"


def _interval(low: Any, high: Any, fmt=_num) -> str:
    return "-" if low is None or high is None else f"[{fmt(low)}, {fmt(high)}]"


def _metric_rows(key: str, block: dict[str, Any]) -> dict[str, Any]:
    cuped = block.get("cuped") or {}
    adjusted = {c["variant"]: c for c in cuped.get("comparisons", [])}
    comparisons = []
    for c in block["comparisons"]:
        seq = c.get("sequential") or {}
        adj = adjusted.get(c["variant"], {})
        comparisons.append(
            {
                "variant": c["variant"],
                "diff": _num(c["diff"]),
                "diff_ci": _interval(c["ci_low"], c["ci_high"]),
                "lift": _pct(c["lift"]),
                "lift_ci": _interval(c["lift_ci_low"], c["lift_ci_high"], _pct),
                "p_value": _num(c["p_value"], 3),
                "cuped_lift": _pct(adj.get("lift")),
                "cuped_ci": _interval(adj.get("lift_ci_low"), adj.get("lift_ci_high"), _pct),
                "sequential": (
                    f"z {_num(seq.get('z'), 3)} / bound {_num(seq.get('bound'), 3)}"
                    f"{', crossed' if seq.get('crossed') else ''}"
                    if seq
                    else "-"
                ),
            }
        )
    return {
        "key": key,
        "kind": block["kind"],
        "roles": ", ".join(block["roles"]) or "secondary",
        "variants": [
            {
                "variant": v["variant"],
                "users": v["users"],
                "mean": _num(v["mean"]),
                "ci": _interval(v["ci_low"], v["ci_high"]),
            }
            for v in block["variants"]
        ],
        "comparisons": comparisons,
        "variance_reduction": (
            f"{cuped['variance_reduction']:.1%}"
            if cuped.get("variance_reduction") is not None
            else "-"
        ),
    }


def report_view(model_admin: ModelAdmin, request: HttpRequest, object_id: str) -> TemplateResponse:
    """Staff with view permission on experiments; ``?metric=`` narrows it to one metric."""
    experiment = model_admin.get_object(request, unquote(object_id))
    if experiment is None:
        raise Http404("No such experiment.")
    if not model_admin.has_view_permission(request, experiment):
        raise PermissionDenied
    metric = request.GET.get("metric") or None
    if metric is not None and metric not in REPORT_METRICS:
        model_admin.message_user(request, f"Unknown metric {metric!r}.", messages.WARNING)
        metric = None
    report = experiment_report(experiment, metric=metric)
    series = report["series"]
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": experiment,
        "title": f"Report: {experiment.key}",
        "report": report,
        "metrics": [_metric_rows(k, b) for k, b in report["metrics"].items()],
        "srm_p": _num((report["srm"] or {}).get("p_value"), 3),
        "metric_choices": REPORT_METRICS,
        "metric": metric or "",
        # lift_svg escapes every text it writes and formats every number itself.
        "plot": mark_safe(
            lift_svg(series["points"], title=f"Cumulative lift of {series['metric']}")
        ),
    }
    return TemplateResponse(request, TEMPLATE, context)
