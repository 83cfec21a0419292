"""Bytes per artifact kind over time as an SVG drawn on the server: no JavaScript, no
build step, nothing fetched by the browser. One polyline per kind, a labelled y axis in
binary units and the first and last day on the x axis."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from django.template.defaultfilters import filesizeformat
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour per kind, distinguishable for the common colour-vision deficiencies (Okabe-Ito).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 80, 210, 20, 40  # margins: axis labels left, legend right


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2, 4 or 8 x 1024^k x 10^n at or above ``value``: an axis top whose
    quarters read well in binary units."""
    if value <= 0:
        return 1
    unit = 1
    while unit * 1024 <= value:
        unit *= 1024
    scaled = value / unit
    step = 1.0
    while True:
        for factor in (1, 2, 4, 8):
            if factor * step >= scaled:
                return int(factor * step * unit)
        step *= 10


def bytes_chart(series: Mapping[str, Sequence[tuple[dt.date, int]]]) -> SafeString:
    """An inline ``<svg>`` of each series (a label -> ``(day, bytes)`` points)."""
    days = max((len(points) for points in series.values()), default=0)
    top = _nice_ceiling(max((b for points in series.values() for _, b in points), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(index: int) -> float:
        return LEFT + (plot_w * index / (days - 1) if days > 1 else plot_w / 2)

    def y(value: int) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" class="dual-storage-usage-chart" '
        'aria-label="Bytes held per artifact kind, by day">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" '
        'stroke="#999"/>',
    ]
    for step in range(5):
        value = top * step // 4
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
            'stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" font-size="11">'
            f"{escape(filesizeformat(value))}</text>"
        )
    for index, (label, points) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        coords = " ".join(f"{x(i):.1f},{y(b):.1f}" for i, (_, b) in enumerate(points))
        held = points[-1][1] if points else 0
        legend_y = TOP + 16 + 20 * index
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'
            f'<rect x="{WIDTH - RIGHT + 12}" y="{legend_y - 9}" width="10" height="10" '
            f'fill="{colour}"/>'
            f'<text x="{WIDTH - RIGHT + 28}" y="{legend_y}" font-size="12">'
            f"{escape(label)} ({escape(filesizeformat(held))})</text>"
        )
    first_points = next((points for points in series.values() if points), [])
    if first_points:
        for index, anchor in ((0, "start"), (len(first_points) - 1, "end")):
            parts.append(
                f'<text x="{x(index):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="{anchor}" '
                f'font-size="11">{first_points[index][0].isoformat()}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - numbers, and labels escaped above
