"""A small server-side SVG builder for the report's plot: the cumulative relative lift of a
metric per day, with its 95% confidence band, one colour per treatment. No JavaScript, no
stylesheet, no dependency; every text is escaped (``html.escape``) and every number is
formatted by this module, so the result is safe to embed in a page as it is."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
_PAD_LEFT, _PAD_RIGHT, _PAD_TOP, _PAD_BOTTOM = 64, 16, 28, 44


def _num(value: float) -> str:
    return f"{value:.1f}"


def _finite(*values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def _segments(points: Sequence[tuple[int, Mapping[str, Any]]]) -> list[list[tuple[int, Any]]]:
    """Runs of consecutive points that have a lift and an interval (gaps break the line)."""
    runs: list[list[tuple[int, Any]]] = [[]]
    for i, p in points:
        if _finite(p.get("lift"), p.get("ci_low"), p.get("ci_high")):
            runs[-1].append((i, p))
        elif runs[-1]:
            runs.append([])
    return [r for r in runs if r]


def lift_svg(
    points: Iterable[Mapping[str, Any]],
    *,
    title: str = "",
    width: int = 720,
    height: int = 300,
) -> str:
    """An SVG document (a string) plotting ``points`` ({variant, date, lift, ci_low,
    ci_high}, lifts as fractions) against their dates; an empty-state SVG without points."""
    rows = list(points)
    dates = sorted({str(p["date"]) for p in rows})
    variants = list(dict.fromkeys(str(p["variant"]) for p in rows))
    plot_w = width - _PAD_LEFT - _PAD_RIGHT
    plot_h = height - _PAD_TOP - _PAD_BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "lift")}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    if title:
        out.append(f'<text x="{_PAD_LEFT}" y="16" font-size="13">{escape(title)}</text>')
    values: list[float] = [
        float(v or 0.0)
        for p in rows
        for v in (p.get("lift"), p.get("ci_low"), p.get("ci_high"))
        if _finite(v)
    ]
    if not values:
        out.append(
            f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" '
            'fill="#666666">No data yet.</text></svg>'
        )
        return "".join(out)
    low, high = min(min(values), 0.0), max(max(values), 0.0)
    if high - low < 1e-9:
        low, high = low - 0.05, high + 0.05
    margin = (high - low) * 0.08
    low, high = low - margin, high + margin
    index = {d: i for i, d in enumerate(dates)}
    step = plot_w / max(len(dates) - 1, 1)

    def x(i: int) -> float:
        return _PAD_LEFT + (i * step if len(dates) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return _PAD_TOP + (high - v) / (high - low) * plot_h

    # Axes, grid at five levels, zero line, date labels.
    out.append(
        f'<rect x="{_PAD_LEFT}" y="{_PAD_TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#999999"/>'
    )
    for k in range(5):
        v = low + (high - low) * k / 4
        out.append(
            f'<line x1="{_PAD_LEFT}" x2="{_PAD_LEFT + plot_w}" y1="{_num(y(v))}" '
            f'y2="{_num(y(v))}" stroke="#eeeeee"/>'
            f'<text x="{_PAD_LEFT - 6}" y="{_num(y(v) + 4)}" text-anchor="end">'
            f"{escape(f'{v:+.1%}')}</text>"
        )
    out.append(
        f'<line x1="{_PAD_LEFT}" x2="{_PAD_LEFT + plot_w}" y1="{_num(y(0.0))}" '
        f'y2="{_num(y(0.0))}" stroke="#333333" stroke-dasharray="4 3"/>'
    )
    every = max(1, math.ceil(len(dates) / 8))
    for i, d in enumerate(dates):
        if i % every == 0 or i == len(dates) - 1:
            out.append(
                f'<text x="{_num(x(i))}" y="{height - _PAD_BOTTOM + 16}" '
                f'text-anchor="middle">{escape(d)}</text>'
            )
    # One band and one line per treatment.
    for n, variant in enumerate(variants):
        colour = COLOURS[n % len(COLOURS)]
        own = [(index[str(p["date"])], p) for p in rows if str(p["variant"]) == variant]
        own.sort(key=lambda pair: pair[0])
        for run in _segments(own):
            upper = " ".join(f"{_num(x(i))},{_num(y(p['ci_high']))}" for i, p in run)
            lower = " ".join(f"{_num(x(i))},{_num(y(p['ci_low']))}" for i, p in reversed(run))
            line = " ".join(f"{_num(x(i))},{_num(y(p['lift']))}" for i, p in run)
            out.append(
                f'<polygon points="{upper} {lower}" fill="{colour}" fill-opacity="0.18" '
                'stroke="none"/>'
            )
            out.append(
                f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
            for i, p in run:
                tip = (
                    f"{variant} {p['date']}: {p['lift']:+.2%} "
                    f"({p['ci_low']:+.2%} to {p['ci_high']:+.2%})"
                )
                out.append(
                    f'<circle cx="{_num(x(i))}" cy="{_num(y(p["lift"]))}" r="2.5" '
                    f'fill="{colour}"><title>{escape(tip)}</title></circle>'
                )
        legend_x = _PAD_LEFT + 10 + n * 150
        out.append(
            f'<rect x="{legend_x}" y="{height - 16}" width="12" height="8" fill="{colour}"/>'
            f'<text x="{legend_x + 16}" y="{height - 8}">{escape(variant)} vs control</text>'
        )
    out.append("</svg>")
    return "".join(out)
