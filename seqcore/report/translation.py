"""The comparison report's translation section (tasks.translate runs): the BLEU table, example
translations of both backends side by side, attention maps side by side with their largest
difference, and corpus BLEU by source length as a figure and a table.

Everything comes from the runs' summary lines: `examples` (the book's sentences and some held-out
ones, each with its greedy translation and, with attention, the weights of its reference under
teacher forcing, the same batch on every backend), `bleu_by_length` and the median split (greedy,
and `_beam` with --beam). A model is "cell impl" with "+attention" when it attends (records.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from seqcore.jobs.figures import attention_difference, plot_attention_pair
from seqcore.report import records as cmp

MAPS_PER_MODEL = 4  # the book's four sentences


def _fmt(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def section(pairs: Mapping[str, Mapping[str, dict]], backends: Sequence[str], figures: Path) -> list[tuple]:
    """pairs: {model name: {backend: record}} (each backend's lowest seed)."""
    blocks: list[tuple] = []
    blocks += _bleu_table(pairs, backends)
    blocks += _examples(pairs, backends)
    blocks += _attention_maps(pairs, backends, figures)
    blocks += _by_length(pairs, backends, figures)
    return blocks


def _bleu_table(pairs: Mapping[str, Mapping[str, dict]], backends: Sequence[str]) -> list[tuple]:
    rows = []
    for name, chosen in pairs.items():
        for backend in backends:
            record = chosen.get(backend)
            if record is None:
                continue
            summary = record["summary"]
            rows.append([name, backend, _fmt(summary.get("book_bleu")), _fmt(summary.get("bleu"), 2),
                         _fmt(summary.get("chrf"), 2), _fmt(summary.get("bleu_beam"), 2),
                         _fmt(summary.get("train_loss"), 4), _fmt(summary.get("val_loss"), 4)])
        losses = [chosen[b]["summary"].get("train_loss") for b in backends if b in chosen]
        if len(losses) >= 2 and None not in losses[:2]:
            rows.append([name, "relative gap", "", "", "", "", f"{cmp.relative(losses[0], losses[1]):.2e}", ""])
    header = ["model", "backend", "book BLEU (0-1)", "held-out BLEU", "chrF", "BLEU, beam", "final train loss",
              "val loss"]
    return [("h3", "BLEU: the book's four sentences and the held-out pairs (sacrebleu, greedy and beam)"),
            ("table", header, rows),
            ("p", "book BLEU is the mean of the book's own BLEU (k = 2) over its four sentences; held-out BLEU and "
                  "chrF are sacrebleu's corpus scores (13a, 4-grams) against the untruncated references. With "
                  "references of three words or fewer (d2l's 641 lines) corpus 4-gram BLEU stays near 0 whatever the "
                  "model; chrF and the book's BLEU tell such models apart.")]


def _examples(pairs: Mapping[str, Mapping[str, dict]], backends: Sequence[str]) -> list[tuple]:
    rows = []
    for name, chosen in pairs.items():
        lists = {b: chosen[b]["summary"].get("examples") or [] for b in backends if b in chosen}
        if not lists:
            continue
        first = next(iter(lists.values()))
        for index, example in enumerate(first):
            texts = [lists[b][index]["translation"] if b in lists and index < len(lists[b]) else "-" for b in backends]
            rows.append([name, repr(example["source"]), repr(example["reference"]), *[repr(t) for t in texts],
                         "yes" if len(set(texts)) == 1 else "no"])
    return [("h3", "Example translations, both backends side by side (greedy)"),
            ("table", ["model", "source", "reference", *backends, "identical"], rows)]


def _attention_maps(pairs: Mapping[str, Mapping[str, dict]], backends: Sequence[str], figures: Path) -> list[tuple]:
    blocks: list[tuple] = [("h3", "Attention weights, both backends side by side")]
    rows = []
    for name, chosen in pairs.items():
        if len(backends) < 2 or not all(b in chosen for b in backends[:2]):
            continue
        first, second = (chosen[b]["summary"].get("examples") or [] for b in backends[:2])
        for index, (a, b) in enumerate(list(zip(first, second))[:MAPS_PER_MODEL]):
            if not a.get("forced_attention") or not b.get("forced_attention"):
                continue
            maps = {backends[0]: np.asarray(a["forced_attention"]), backends[1]: np.asarray(b["forced_attention"])}
            if maps[backends[0]].shape != maps[backends[1]].shape:
                continue
            path = plot_attention_pair(figures / f"translate_attention_{_slug(name)}_{index}.png", maps,
                                       a["source_tokens"], a["reference_tokens"], title=f"{name}: {a['source']!r}")
            difference = attention_difference(*maps.values())
            rows.append([name, repr(a["source"]), f"{difference:.2e}"])
            blocks.append(("figure", path, f"{name}: the weights with which each token of the reference "
                                           f"{a['reference']!r} is predicted (teacher forcing, the same batch on "
                                           f"both backends), over the source {a['source']!r}; largest difference "
                                           f"{difference:.2e}."))
    if rows:
        blocks.insert(1, ("table", ["model", "source", "largest |difference|"], rows))
    else:
        blocks.append(("p", "No model with attention finished on both backends."))
    return blocks


def _by_length(pairs: Mapping[str, Mapping[str, dict]], backends: Sequence[str], figures: Path) -> list[tuple]:
    rows, bars = [], {}
    for name, chosen in pairs.items():
        for backend in backends:
            if backend not in chosen:
                continue
            summary = chosen[backend]["summary"]
            for way, suffix in (("greedy", ""), ("beam", "_beam")):
                buckets = summary.get(f"bleu_by_length{suffix}")
                if not buckets:
                    continue
                bars[f"{name} {backend} {way}"] = {b["lengths"]: b["bleu"] for b in buckets}
                rows.append([name, backend, way, *[f"{b['lengths']}: {b['bleu']:.2f} ({b['count']})" for b in buckets],
                             _fmt(summary.get(f"bleu_below_median{suffix}"), 2),
                             _fmt(summary.get(f"bleu_above_median{suffix}"), 2),
                             _fmt(summary.get(f"median_source_length{suffix}"), 1)])
    if not rows:
        return [("h3", "BLEU by source length"), ("p", "No run scored held-out pairs.")]
    width = max(len(r) for r in rows)
    rows = [r[:3] + [""] * (width - len(r)) + r[3:] if len(r) < width else r for r in rows]
    header = ["model", "backend", "decoding", *[f"bucket {i + 1}: words: BLEU (pairs)" for i in range(width - 6)],
              "BLEU, sources <= median", "BLEU, sources > median", "median length"]
    path = length_figure(figures / "translate_bleu_by_length.png", bars)
    return [("h3", "BLEU by source length (held-out pairs)"), ("table", header, rows),
            ("figure", path, "Held-out corpus BLEU in source-length buckets (quartiles of the held-out lengths), "
                             "every model and backend.")]


def length_figure(path: Path, bars: Mapping[str, Mapping[str, float]],
                  title: str = "Held-out BLEU by source length") -> Optional[Path]:
    """Grouped bars: {label: {bucket ('1-4'): BLEU}} -> a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = list(dict.fromkeys(b for values in bars.values() for b in values))
    width = 0.8 / max(1, len(bars))
    figure, axes = plt.subplots(figsize=(max(6.4, 1.2 * len(buckets) + 0.4 * len(bars)), 4.2), dpi=100)
    for index, (label, values) in enumerate(bars.items()):
        xs = [buckets.index(b) + index * width for b in values]
        axes.bar(xs, list(values.values()), width, label=label)
    axes.set_xticks([i + width * (len(bars) - 1) / 2 for i in range(len(buckets))], [f"{b} words" for b in buckets])
    axes.set(ylabel="corpus BLEU", title=title)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)
