"""A small server-side SVG line chart (the admin's segment sizes over time).

No JavaScript, no stylesheet, no dependency: every text is escaped (``html.escape``) and
every number is formatted here, so the result is safe to embed in a page as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from html import escape

COLOURS = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
)
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 150, 28, 40


def _n(value: float) -> str:
    return f"{value:.1f}"


def lines_svg(
    series: Mapping[str, Sequence[tuple[date, float]]],
    *,
    title: str = "",
    width: int = 760,
    height: int = 300,
) -> str:
    """An SVG document plotting each series (name -> (day, value) points) against the days,
    with a legend on the right; an empty-state SVG when there is no point."""
    days = sorted({d for points in series.values() for d, _ in points})
    top = max((v for points in series.values() for _, v in points), default=0.0)
    top = max(top, 1.0)
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title or "chart")}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    if title:
        out.append(f'<text x="{_LEFT}" y="16" font-size="13">{escape(title)}</text>')
    if not days:
        out.append(f'<text x="{_LEFT}" y="{_TOP + plot_h // 2}">No data yet.</text></svg>')
        return "".join(out)
    span = max(len(days) - 1, 1)
    index = {d: i for i, d in enumerate(days)}

    def x(d: date) -> float:
        return _LEFT + plot_w * index[d] / span

    def y(v: float) -> float:
        return _TOP + plot_h * (1.0 - v / top)

    bottom = _TOP + plot_h
    out.append(
        f'<line x1="{_LEFT}" y1="{bottom}" x2="{_LEFT + plot_w}" y2="{bottom}" stroke="#999"/>'
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}" stroke="#999"/>'
    )
    for frac in (0.0, 0.5, 1.0):
        value = top * frac
        out.append(
            f'<text x="{_LEFT - 6}" y="{_n(y(value) + 4)}" text-anchor="end">{value:.0f}</text>'
        )
    for d in (days[0], days[-1]) if len(days) > 1 else (days[0],):
        out.append(
            f'<text x="{_n(x(d))}" y="{bottom + 16}" text-anchor="middle">'
            f"{escape(d.isoformat())}</text>"
        )
    for i, (name, points) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        ordered = sorted(points)
        if len(ordered) == 1:
            d, v = ordered[0]
            out.append(f'<circle cx="{_n(x(d))}" cy="{_n(y(v))}" r="3" fill="{colour}"/>')
        elif ordered:
            path = " ".join(f"{_n(x(d))},{_n(y(v))}" for d, v in ordered)
            out.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
        legend_y = _TOP + 14 * i + 8
        out.append(
            f'<rect x="{width - _RIGHT + 12}" y="{legend_y - 8}" width="10" height="10" '
            f'fill="{colour}"/><text x="{width - _RIGHT + 26}" y="{legend_y + 1}">'
            f"{escape(name[:24])}</text>"
        )
    out.append("</svg>")
    return "".join(out)
