"""Accuracy against compute (#30): one point per (run, method) at its GFLOP per image (log axis)
and top-1, the Pareto front (no other point is both cheaper and at least as accurate) marked, a
sweep's points joined in the order of its values. An inline SVG, so that each point, the front and
the axis labels are elements a browser (and a test) can read."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from glocal.results.plots import accuracy_limit

WIDTH, HEIGHT = 560, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 44  # margins around the plotting area, pixels


@dataclass(frozen=True)
class CostPoint:
    run_id: str
    method: str
    label: str  # what the report calls the run (dataset / backbone, what differs)
    gflop: float  # per image, > 0
    top1_pct: float


def pareto_front(points: list[CostPoint]) -> list[int]:
    """Indices of the points on the front, cheapest first: a point is on it when every cheaper-or-
    equal point is less accurate (ties in cost: the more accurate one; in both: the first)."""
    order = sorted(range(len(points)), key=lambda i: (points[i].gflop, -points[i].top1_pct, i))
    front, best = [], -math.inf
    for i in order:
        if points[i].top1_pct > best:
            front.append(i)
            best = points[i].top1_pct
    return front


def _x_range(points: list[CostPoint]) -> tuple[float, float]:
    low = math.floor(math.log10(min(p.gflop for p in points)))
    high = math.ceil(math.log10(max(p.gflop for p in points)))
    return low, max(high, low + 1)


def cost_plot_svg(points: list[CostPoint], sweeps: list[list[int]] | None = None) -> str:
    """``points`` (each with a positive GFLOP count); ``sweeps``: per sweep, the indices of its points
    in the order of its values. -> an ``<svg class="cost-plot">`` element."""
    low, high = _x_range(points)
    top = accuracy_limit([p.top1_pct for p in points])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(gflop: float) -> float:
        return LEFT + (math.log10(gflop) - low) / (high - low) * plot_w

    def y(top1: float) -> float:
        return TOP + (1 - top1 / top) * plot_h

    parts = [f'<svg class="cost-plot" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="top-1 accuracy against GFLOP per image">',
             f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>']
    for decade in range(int(low), int(high) + 1):  # log axis: a tick and a label per power of ten
        px = x(10.0 ** decade)
        parts.append(f'<line class="x-tick" x1="{px:.1f}" y1="{TOP + plot_h}" x2="{px:.1f}" y2="{TOP + plot_h + 4}" stroke="#555"/>')
        parts.append(f'<text class="x-tick-label" x="{px:.1f}" y="{TOP + plot_h + 16}" font-size="10" text-anchor="middle">{10.0 ** decade:g}</text>')
    for step in range(5):
        value = top * step / 4
        py = y(value)
        parts.append(f'<line x1="{LEFT - 4}" y1="{py:.1f}" x2="{LEFT}" y2="{py:.1f}" stroke="#555"/>')
        parts.append(f'<text class="y-tick-label" x="{LEFT - 6}" y="{py + 3:.1f}" font-size="10" text-anchor="end">{value:.3g}</text>')
    parts.append(f'<text class="x-label" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" font-size="11" text-anchor="middle">'
                 "GFLOP per image (log scale)</text>")
    parts.append(f'<text class="y-label" x="12" y="{TOP + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
                 f'transform="rotate(-90 12 {TOP + plot_h / 2:.1f})">top-1 accuracy (%)</text>')
    for members in sweeps or []:
        if len(members) > 1:
            path = " ".join(f"{x(points[i].gflop):.1f},{y(points[i].top1_pct):.1f}" for i in members)
            parts.append(f'<polyline class="sweep" points="{path}" fill="none" stroke="#1f77b4" stroke-dasharray="3 2"/>')
    front = pareto_front(points)
    path = " ".join(f"{x(points[i].gflop):.1f},{y(points[i].top1_pct):.1f}" for i in front)
    parts.append(f'<polyline class="front" points="{path}" fill="none" stroke="#d62728" stroke-width="1.5"/>')
    on_front = set(front)
    for i, p in enumerate(points):
        title = html.escape(f"{p.method} — {p.label}: {p.top1_pct:.2f} % at {p.gflop:.4g} GFLOP/image" + (" (Pareto front)" if i in on_front else ""))
        parts.append(f'<circle class="point{" on-front" if i in on_front else ""}" cx="{x(p.gflop):.1f}" cy="{y(p.top1_pct):.1f}" r="4" '
                     f'fill="{"#d62728" if i in on_front else "#555"}" data-run="{html.escape(p.run_id)}" data-method="{html.escape(p.method)}" '
                     f'data-gflop="{p.gflop:.6g}" data-top1="{p.top1_pct:.4f}"><title>{title}</title></circle>')
        parts.append(f'<text class="point-label" x="{x(p.gflop) + 6:.1f}" y="{y(p.top1_pct) - 5:.1f}" font-size="9">{html.escape(p.method)}</text>')
    parts.append("</svg>")
    return "".join(parts)
