"""Matplotlib figures for the report, rendered off-screen (Agg) to PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt

HEAT_MAP = "inferno"  # attention colour map: dark = little attention, bright yellow = the most


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def accuracy_limit(values: list[float]) -> float:
    """The top of an accuracy axis (%): 100 when the data reach half of it, else a little above the
    largest value (at least 1), so that low accuracies are read at their scale; it starts at 0."""
    top = max(values, default=0.0)
    return 100.0 if top >= 50 else max(1.0, top * 1.15)


def accuracy_bars(methods: list[str], columns: list[str], top1: dict[tuple[str, str], float]) -> bytes:
    """Grouped bars: top-1 (%) per method (groups), one bar per column (dataset / backbone / run).
    ``top1``: {(method, column): accuracy in [0, 1]}; missing pairs are left out."""
    figure, axes = plt.subplots(figsize=(max(4.0, 0.9 * len(methods) * max(1, len(columns)) ** 0.5 + 2), 3.2))
    width = 0.8 / max(1, len(columns))
    for j, column in enumerate(columns):
        xs = [i + (j - (len(columns) - 1) / 2) * width for i, m in enumerate(methods) if (m, column) in top1]
        ys = [100 * top1[(m, column)] for m in methods if (m, column) in top1]
        bars = axes.bar(xs, ys, width=width, label=column)
        axes.bar_label(bars, fmt="%.1f", fontsize="x-small")  # a 0 % bar has no height: its value still shows
    axes.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_ylim(0, accuracy_limit([100 * v for v in top1.values()]))
    if len(columns) > 1:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes.grid(axis="y", alpha=0.3)
    return _png(figure)


def sweep_plot(param: str, method: str, values: list, top1: list[float], baselines: dict[str, float], title: str) -> bytes:
    """Accuracy (%) vs the swept value, baselines as dashed horizontal lines (the paper's Figure 4).
    Numeric values: a line on a numeric axis; presets and other labels: one bar each."""
    figure, axes = plt.subplots(figsize=(5, 3.2))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    ys = [100 * a for a in top1]
    if numeric:
        axes.plot(values, ys, marker="o", label=method)
    else:
        axes.bar(range(len(values)), ys, width=0.6, label=method, color="C0")
        axes.set_xticks(range(len(values)), [str(v) for v in values], rotation=20, ha="right")
    for name, accuracy in baselines.items():
        axes.axhline(100 * accuracy, linestyle="--", linewidth=1, label=name, color=f"C{1 + list(baselines).index(name)}")
    axes.set_xlabel(param)
    axes.set_ylabel("top-1 accuracy (%)")
    axes.set_ylim(0, accuracy_limit(ys + [100 * a for a in baselines.values()]))
    axes.set_title(title, fontsize="small")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3, axis="y" if not numeric else "both")
    return _png(figure)


def colour_scale(width: int = 224) -> bytes:
    """The attention colour map as a labelled bar: what each colour of the gallery's heatmaps means."""
    import numpy as np

    figure, axes = plt.subplots(figsize=(width / 100, 0.55))
    axes.imshow(np.linspace(0, 1, 256)[None, :], aspect="auto", cmap=HEAT_MAP)
    axes.set_yticks([])
    axes.set_xticks([0, 255], ["least", "most attended"], fontsize=7)
    axes.set_title("attention (per image)", fontsize=7)
    return _png(figure)
