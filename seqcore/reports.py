"""What a run leaves behind for people: metrics as JSON lines, curves as PNG, and the machine
and versions that produced them (throughput means little without them)."""
from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence


def machine_info(versions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Host, processor count and library versions, merged with a backend's `versions()`."""
    import numpy

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": numpy.__version__,
    }
    info.update(versions or {})
    return info


class MetricsWriter:
    """Appends one JSON object per line to `path`, flushed at once so a crash keeps every line."""

    def __init__(self, path: str | os.PathLike, fresh: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            self.path.write_text("")

    def write(self, record: Mapping[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(_finite(record)) + "\n")


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _finite(record: Mapping[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: write non-finite floats as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


def plot_curves(path: str | os.PathLike, curves: Mapping[str, Sequence[tuple[float, float]]], *,
                title: str, xlabel: str, ylabel: str, logy: bool = False) -> Path:
    """One line per named curve of (x, y) points, saved as a PNG without a display."""
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
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def series(records: Iterable[Mapping[str, Any]], x: str, y: str) -> list[tuple[float, float]]:
    """(x, y) pairs from the records that have a value for `y`."""
    return [(r[x], r[y]) for r in records if r.get(y) is not None]
