"""The figures the tasks draw, as PNG files without a display (matplotlib's Agg backend)."""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from seqcore.errors import SeqcoreError


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    return plt


def plot_curves(path: str | os.PathLike, curves: Mapping[str, Sequence[tuple[float, float]]], *,
                title: str, xlabel: str, ylabel: str, logy: bool = False) -> Path:
    """One line per named curve of (x, y) points, saved as a PNG without a display, into a folder
    that exists (a run folder deleted while it trains is never made again)."""
    plt = _pyplot()
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


def attention_difference(first: np.ndarray, second: np.ndarray) -> float:
    """The largest absolute difference between two maps of attention weights of one shape."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.shape != second.shape:
        raise SeqcoreError(f"Attention maps of shapes {first.shape} and {second.shape} cannot be compared.")
    return float(np.abs(first - second).max()) if first.size else 0.0


def plot_attention(path: str | os.PathLike, weights: np.ndarray, source_tokens: Sequence[str],
                   target_tokens: Sequence[str], *, title: str = "") -> Path:
    """One translation's attention weights (T_tgt, T_src) as the book's heat map: a row per target
    token (the queries, first at the top), a column per source token (the keys), white 0 to red 1."""
    return _plot_maps(path, {"": weights}, source_tokens, target_tokens, title)


def plot_attention_pair(path: str | os.PathLike, maps: Mapping[str, np.ndarray], source_tokens: Sequence[str],
                        target_tokens: Sequence[str], *, title: str = "") -> Path:
    """Two labelled maps of one translation side by side (e.g. {'mxnet': ..., 'torch': ...}), on
    one colour scale, with their largest difference in the title."""
    if len(maps) != 2:
        raise SeqcoreError(f"A side-by-side attention figure takes two maps, got {len(maps)}.")
    first, second = maps.values()
    difference = f"largest difference {attention_difference(first, second):.2e}"
    return _plot_maps(path, maps, source_tokens, target_tokens, f"{title}: {difference}" if title else difference)


def _plot_maps(path: str | os.PathLike, maps: Mapping[str, np.ndarray], source_tokens: Sequence[str],
               target_tokens: Sequence[str], title: str) -> Path:
    shape = (len(target_tokens), len(source_tokens))
    for label, weights in maps.items():
        if np.shape(weights) != shape:
            raise SeqcoreError(f"Attention weights{' ' + label if label else ''} have shape {np.shape(weights)}, "
                               f"not {shape} (target tokens, source tokens).")
    plt = _pyplot()
    width, height = 1.6 + 0.45 * shape[1], 2.2 + 0.4 * shape[0]
    figure, axes = plt.subplots(1, len(maps), figsize=(len(maps) * width + 1.0, height), dpi=120, squeeze=False,
                                layout="constrained")
    for index, (ax, (label, weights)) in enumerate(zip(axes[0], maps.items())):
        image = ax.imshow(np.asarray(weights, dtype=np.float64), cmap="Reds", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(shape[1]), list(source_tokens), rotation=60, ha="right")
        ax.set_yticks(range(shape[0]), list(target_tokens) if index == 0 else [])
        ax.set(xlabel="source (keys)", ylabel="target (queries)" if index == 0 else "", title=label)
    figure.colorbar(image, ax=list(axes[0]), shrink=0.8)
    if title:
        figure.suptitle(title)
    path = Path(path)
    figure.savefig(path)
    plt.close(figure)
    return path
