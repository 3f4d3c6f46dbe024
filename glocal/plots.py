"""Matplotlib figures for the report, rendered off-screen (Agg) to PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def accuracy_bars(methods: list[str], columns: list[str], top1: dict[tuple[str, str], float]) -> bytes:
    """Grouped bars: top-1 (%) per method (groups), one bar per column (dataset / backbone / run).
    ``top1``: {(method, column): accuracy in [0, 1]}; missing pairs are left out."""
    figure, axes = plt.subplots(figsize=(max(4.0, 0.9 * len(methods) * max(1, len(columns)) ** 0.5 + 2), 3.2))
    width = 0.8 / max(1, len(columns))
    for j, column in enumerate(columns):
        xs = [i + (j - (len(columns) - 1) / 2) * width for i, m in enumerate(methods) if (m, column) in top1]
        ys = [100 * top1[(m, column)] for m in methods if (m, column) in top1]
        axes.bar(xs, ys, width=width, label=column)
    axes.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    axes.set_ylabel("top-1 accuracy (%)")
    if len(columns) > 1:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def sweep_line(param: str, method: str, values: list, top1: list[float], baselines: dict[str, float], title: str) -> bytes:
    """Accuracy (%) vs the swept value, baselines as dashed horizontal lines (the paper's Figure 4).
    Numeric values sit on a numeric axis; presets and other labels are evenly spaced."""
    figure, axes = plt.subplots(figsize=(5, 3.2))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    xs = values if numeric else list(range(len(values)))
    axes.plot(xs, [100 * a for a in top1], marker="o", label=method)
    if not numeric:
        axes.set_xticks(xs, [str(v) for v in values], rotation=20, ha="right")
    for name, accuracy in baselines.items():
        axes.axhline(100 * accuracy, linestyle="--", linewidth=1, label=name, color=f"C{1 + list(baselines).index(name)}")
    axes.set_xlabel(param)
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_title(title, fontsize="small")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
    return _png(figure)
