"""The comparison report's figures: both backends' curves overlaid (solid vs dashed) above a panel
of their relative difference, and confusion matrices side by side. Log axes carry plain numbers,
epoch axes integer ticks, accuracy is in percent, and legends sit above the panels, off the data."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from seqcore.report.records import TOLERANCE, lockstep, relative

STYLES = {"mxnet": dict(color="C0", linestyle="-"), "torch": dict(color="C3", linestyle="--")}
FLOOR = 1e-9  # relative differences below this (exact agreement) are drawn at it


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plain_log(axis, which: str = "y") -> None:
    from matplotlib.ticker import FuncFormatter

    formatter = FuncFormatter(lambda v, _: f"{v:g}")
    target = axis.yaxis if which == "y" else axis.xaxis
    target.set_major_formatter(formatter)
    target.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _style(backend: str) -> dict:
    return STYLES.get(backend, dict(color="C2", linestyle=":"))


def overlay_figure(path: Path, title: str, panels: Mapping[str, Mapping[str, Sequence[tuple]]], *,
                   xlabel: str, ylabel: str, logy: bool, percent: bool = False, integer_x: bool = True) -> Path:
    """panels: {panel title: {backend: [(x, y)]}}; per panel the curves above, |a-b|/max(|a|,|b|) below."""
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    names = list(panels)
    columns = min(3, len(names)) or 1
    rows = max(1, math.ceil(len(names) / columns))
    figure, axes = plt.subplots(2 * rows, columns, figsize=(max(4.2 * columns, 7.0), 4.4 * rows + 0.9), dpi=100,
                                squeeze=False, gridspec_kw={"height_ratios": [2, 1] * rows})
    handles = {}
    for index in range(rows * columns):
        top, bottom = axes[2 * (index // columns), index % columns], axes[2 * (index // columns) + 1, index % columns]
        if index >= len(names):
            top.axis("off")
            bottom.axis("off")
            continue
        curves = panels[names[index]]
        for backend, points in curves.items():
            points = [(x, 100 * y if percent else y) for x, y in points if y is not None and math.isfinite(y)]
            if points:
                xs, ys = zip(*points)
                (line,) = top.plot(xs, ys, linewidth=1.6, marker="o" if len(xs) < 12 else None, markersize=3,
                                   label=backend, **_style(backend))
                handles[backend] = line
        top.set_title(names[index], fontsize=10)
        top.set_ylabel(ylabel + (" (%)" if percent else ""), fontsize=8)
        values = [y for points in curves.values() for _, y in points if y is not None and y > 0]
        if logy and values and max(values) / min(values) > 10:  # within a decade a log axis shows no numbers
            top.set_yscale("log")
            _plain_log(top)
        top.grid(alpha=0.3)
        backends = list(curves)
        if len(backends) >= 2:
            step = lockstep(curves[backends[0]], curves[backends[1]])
            if step is not None:
                xs = [x for x, _ in step.differences]
                ys = [max(d, FLOOR) for _, d in step.differences]
                bottom.plot(xs, ys, color="black", linewidth=1.0, marker="o" if len(xs) < 12 else None, markersize=3)
                bottom.axhline(TOLERANCE, color="grey", linestyle=":", linewidth=1)
                if step.separated_at is not None:
                    bottom.axvline(step.separated_at, color="red", linewidth=1)
                    bottom.annotate(f"apart from {step.separated_at}", (step.separated_at, TOLERANCE),
                                    xytext=(4, 4), textcoords="offset points", fontsize=7, color="red")
        bottom.set_yscale("log")
        bottom.set_ylim(FLOOR / 2, 10)
        _plain_log(bottom)
        bottom.set_ylabel("rel. difference", fontsize=8)
        bottom.set_xlabel(xlabel, fontsize=8)
        bottom.grid(alpha=0.3)
        for axis in (top, bottom):
            axis.tick_params(labelsize=7)
            if integer_x:
                axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(title, fontsize=11, y=0.995)
    if handles:  # under the title, above every panel: never on the data
        figure.legend(list(handles.values()), [f"{b} ({'solid' if _style(b)['linestyle'] == '-' else 'dashed'})"
                                              for b in handles], loc="upper center", bbox_to_anchor=(0.5, 0.965),
                      ncol=len(handles), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.6 / (4.4 * rows + 0.9)))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def confusion_figure(path: Path, title: str, matrices: Mapping[str, Mapping[str, Any]]) -> Path:
    """matrices: {row title: {backend: 10 x 10 counts}}; one row per model, one column per backend."""
    plt = _plt()
    import numpy as np

    names = list(matrices)
    backends = sorted({b for m in matrices.values() for b in m})
    figure, axes = plt.subplots(len(names), len(backends), figsize=(3.0 * len(backends), 3.0 * len(names) + 0.4),
                                dpi=100, squeeze=False)
    for row, name in enumerate(names):
        for column, backend in enumerate(backends):
            axis = axes[row, column]
            matrix = matrices[name].get(backend)
            if matrix is None:
                axis.axis("off")
                continue
            counts = np.asarray(matrix)
            axis.imshow(counts, cmap="Blues")
            for (i, j), value in np.ndenumerate(counts):
                if value:
                    axis.text(j, i, str(value), ha="center", va="center", fontsize=5,
                              color="white" if value > counts.max() / 2 else "black")
            accuracy = 100 * np.trace(counts) / max(1, counts.sum())
            axis.set_title(f"{name}, {backend}: {accuracy:.2f}%", fontsize=8)
            axis.set_xticks(range(10))
            axis.set_yticks(range(10))
            axis.tick_params(labelsize=6)
            axis.set_xlabel("predicted", fontsize=7)
            axis.set_ylabel("true", fontsize=7)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def relative_series(a: Sequence[tuple], b: Sequence[tuple]) -> list[tuple]:
    return [(x, relative(y, v)) for (x, y), (_, v) in zip(a, b)]
