"""The figures the tasks draw, as PNG files without a display (matplotlib's Agg backend)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence


def plot_curves(path: str | os.PathLike, curves: Mapping[str, Sequence[tuple[float, float]]], *,
                title: str, xlabel: str, ylabel: str, logy: bool = False) -> Path:
    """One line per named curve of (x, y) points, saved as a PNG without a display, into a folder
    that exists (a run folder deleted while it trains is never made again)."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for label, points in curves.items():
        points = [(x, y) for x, y in points if y is not None and math.isfinite(y)]
        if points:
            xs, ys = zip(*points)
            axes.plot(xs, ys, label=label, marker="o" if len(points) < 30 else None)
    if logy:
        axes.set_yscale("log")
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path


def series(records: Iterable[Mapping[str, Any]], x: str, y: str) -> list[tuple[float, float]]:
    """(x, y) pairs from the records that have a value for `y`."""
    return [(r[x], r[y]) for r in records if r.get(y) is not None]
