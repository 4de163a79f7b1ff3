"""Finished run folders as comparable records, and what can be said about pairs of them.

A record is one run: task, backend, cell, impl, device, its headline metric (name and value),
its throughput, its configuration and everything its summary line holds. The equivalence
figures (lockstep losses, scratch vs concise, seeds) are computed here from records alone;
nothing here imports a framework.
"""
from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from seqcore.errors import SeqcoreError
from seqcore.run.log import read_metrics

TOLERANCE = 1e-4  # relative: the first step where two losses differ by more is "where they separate"
LOCKSTEP_STEPS = 10  # the first steps whose losses are compared
# Fields that may differ between the runs of one comparison row without a note: the row's own axes
# and output-only settings.
NEUTRAL_FIELDS = {"backend", "seed", "out", "progress", "tensorboard", "resume", "overwrite", "data_dir",
                  "eval_every", "checkpoint_every", "log_every", "span", "prefixes", "num_preds", "patience"}


@dataclasses.dataclass(frozen=True)
class Headline:
    metric: str  # the summary key
    label: str
    higher_is_better: bool
    percent: bool = False
    throughput: str = ""  # summary key, else the last epoch record's tokens_per_s
    throughput_unit: str = "tokens/s"


HEADLINES = {
    "char_lm": Headline("val_ppl", "validation perplexity", False, throughput="tokens_per_s_last_epoch"),
    "mnist_rows": Headline("test_accuracy", "test accuracy", True, percent=True,
                           throughput="rows_per_s_last_epoch", throughput_unit="rows/s"),
    "sine": Headline("generation_mae", "generation MAE", False),
    "hello": Headline("final_loss", "final training cross-entropy", False),
    "translate": Headline("book_bleu", "book BLEU (its 4 sentences, 0-1)", True, throughput="tokens_per_s_last_epoch"),
}
SINE_SIN2COS = Headline("eval_mse", "evaluation MSE", False)


def headline(task: str, summary: Mapping[str, Any]) -> Headline:
    if task == "sine" and "generation_mae" not in summary:
        return SINE_SIN2COS
    return HEADLINES[task]


def load_run(folder: Path) -> dict[str, Any]:
    """The record of a finished run folder, or one sentence on why it is not one."""
    folder = Path(folder)
    path = folder / "metrics.jsonl"
    if not path.is_file():
        raise SeqcoreError(f"{folder} holds no metrics.jsonl: it is not a seqcore run folder.")
    records = read_metrics(path)
    run = next((r for r in records if r.get("kind") == "run"), None)
    if run is None or not isinstance(run.get("model"), dict):
        raise SeqcoreError(f"{path} has no run line: it was not written by a seqcore task.")
    task = run.get("task")
    if task not in HEADLINES:
        raise SeqcoreError(f"{folder} holds a {task} run, which the comparison report does not know.")
    summary = next((r for r in records if r.get("kind") == "summary"), None)
    if summary is None:
        raise SeqcoreError(f"The run in {folder} did not finish (no summary line).")
    config = _config(folder)
    head = headline(task, summary)
    epochs = [r for r in records if r.get("kind") == "epoch"]
    throughput = summary.get(head.throughput) if head.throughput else (epochs[-1].get("tokens_per_s") if epochs else None)
    extra = {k: v for k, v in summary.items() if k not in ("kind", "confusion", "samples")}
    train = run.get("train") if isinstance(run.get("train"), dict) else {}
    impl = run["model"].get("impl")
    if task == "translate" and run["model"].get("attention") not in (None, "none") and isinstance(impl, str):
        impl = f"{impl}+{run['model']['attention']}"  # one model of the grid (grid.VARIANTS)
    for name, value in (("backend", run.get("backend")), ("cell", run["model"].get("cell")), ("impl", impl)):
        if not isinstance(value, str):
            raise SeqcoreError(f"The run line of {path} holds {value!r} where the {name}'s name belongs.")
    for name, value in ((head.metric, summary.get(head.metric)), ("wall_s", summary.get("wall_s")),
                        (head.throughput or "tokens_per_s", throughput)):
        _number(value, name, path)
    seed = train.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SeqcoreError(f"The run line of {path} holds the seed {seed!r}, not a whole number.")
    for name, kind in (("samples", dict), ("confusion", list)):
        if summary.get(name) is not None and not isinstance(summary[name], kind):
            raise SeqcoreError(f"The summary of {path} holds {summary[name]!r} where its {name} belong.")
    return {"task": task, "backend": run.get("backend"), "cell": run["model"].get("cell"),
            "impl": impl, "device": run.get("device"), "metric": head.metric,
            "value": summary.get(head.metric), "seed": seed,
            "status": "done", "error": None, "folder": str(folder), "wall_s": summary.get("wall_s"),
            "throughput": throughput, "throughput_unit": head.throughput_unit,
            "config": config.get("config", {}), "command": command_of(task, config.get("argv")),
            "machine": run.get("machine") if isinstance(run.get("machine"), dict) else {}, "summary": extra,
            "samples": summary.get("samples"), "confusion": summary.get("confusion"),
            "curves": _curves(records, task)}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any, name: str, path: Path) -> None:
    """A figure of a summary: a number, or None where the run did not measure it."""
    if value is not None and not _is_number(value):
        raise SeqcoreError(f"{path} holds {value!r} where a number belongs ({name}); it was not written by a "
                           f"seqcore task, or was changed by hand.")


def failed_record(task: str, backend: str, cell: str, impl: str, seed: int, folder: Path, error: str,
                  command: str) -> dict[str, Any]:
    """A run of the grid that did not finish: shown with its error, never fatal."""
    return {"task": task, "backend": backend, "cell": cell, "impl": impl, "device": None,
            "metric": HEADLINES[task].metric, "value": None, "seed": seed, "status": "failed", "error": error,
            "folder": str(folder), "wall_s": None, "throughput": None, "throughput_unit": "",
            "config": {}, "command": command, "machine": {}, "summary": {}, "samples": None,
            "confusion": None, "curves": {}}


def _config(folder: Path) -> dict[str, Any]:
    try:
        saved = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SeqcoreError(f"{folder / 'config.json'} is missing or damaged: {folder} is not a whole run folder.") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
        raise SeqcoreError(f"{folder / 'config.json'} is not a seqcore run configuration.")
    return saved


def command_of(task: str, argv: Any) -> str:
    """The pasteable command that produced a run (argv[0] is the module's file under -m)."""
    import shlex

    args = list(argv[1:]) if isinstance(argv, list) and argv else []
    return shlex.join(["python", "-m", f"tasks.{task}", *map(str, args)])


def _curves(records: Sequence[Mapping[str, Any]], task: str) -> dict[str, list]:
    """step: [(global step, loss)] when every step was logged (one step per epoch for hello);
    epoch: {figure: [(epoch, value)]} for the training and evaluation figures."""
    steps = [(r.get("global_step"), r["loss"]) for r in records if r.get("kind") == "step" and _is_number(r.get("loss"))]
    epochs = [r for r in records if r.get("kind") == "epoch"]
    if task == "hello":
        steps = [(r.get("epoch"), r["train_loss"]) for r in epochs if _is_number(r.get("train_loss"))]
    if [s for s, _ in steps] != list(range(1, len(steps) + 1)):
        steps = []  # not every step was logged: no lockstep comparison
    keys = ("train_ppl", "val_ppl") if task == "char_lm" else ("train_loss", "val_loss", "book_bleu", "bleu") \
        if task == "translate" else ("train_loss", "test_accuracy", "generation_mae", "eval_mse", "eval_loss")
    per_epoch = {k: [(r["epoch"], r[k]) for r in epochs if isinstance(r.get(k), (int, float))] for k in keys}
    return {"step": steps, "epoch": {k: v for k, v in per_epoch.items() if v}}


def config_differences(runs: Sequence[Mapping[str, Any]], ignore: Iterable[str] = ()) -> list[str]:
    """'lr: 1.0 (mxnet) vs 0.5 (torch)' for each configuration field the runs do not share."""
    skip = NEUTRAL_FIELDS | set(ignore)
    keys = sorted({k for r in runs for k in r["config"]} - skip)
    notes = []
    for key in keys:
        values = [json.dumps(r["config"].get(key)) for r in runs]
        if len(set(values)) > 1:
            notes.append(f"{key}: " + " vs ".join(f"{v} ({r['backend']})" for v, r in zip(values, runs)))
    devices = {r["device"] for r in runs if r["device"]}
    if len(devices) > 1:
        notes.append("device: " + " vs ".join(f"{r['device']} ({r['backend']})" for r in runs))
    return notes


def relative(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale else 0.0


@dataclasses.dataclass(frozen=True)
class Lockstep:
    steps: int  # steps compared in all
    first_max: float  # the largest relative difference over the first LOCKSTEP_STEPS steps
    separated_at: Optional[int]  # the first step beyond TOLERANCE; None: never within `steps`
    last: float  # the relative difference at the last compared step
    differences: list  # [(step, relative difference)]


def lockstep(a: Sequence[tuple], b: Sequence[tuple]) -> Optional[Lockstep]:
    """The per-step losses of two runs side by side; None when either did not log every step."""
    n = min(len(a), len(b))
    if n == 0:
        return None
    diffs = [(a[i][0], relative(a[i][1], b[i][1])) for i in range(n)]
    first = max(d for _, d in diffs[:LOCKSTEP_STEPS])
    separated = next((s for s, d in diffs if d > TOLERANCE), None)
    return Lockstep(n, first, separated, diffs[-1][1], diffs)


@dataclasses.dataclass(frozen=True)
class Spread:
    n: int
    mean: float
    std: float  # sample standard deviation; 0 for one seed


def spread(values: Sequence[float]) -> Optional[Spread]:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not values:
        return None
    return Spread(len(values), statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)


def gap_inside_spread(a: Spread, b: Spread) -> Optional[bool]:
    """Whether the backends' mean gap is within the larger of their seed spreads (None: one seed)."""
    if a.n < 2 or b.n < 2:
        return None
    return abs(a.mean - b.mean) <= max(a.std, b.std)


ORDER = {"rnn": 0, "gru": 1, "lstm": 2, "scratch": 0, "concise": 1}


def model_order(key: Sequence[str]) -> tuple:
    """Sort key of (cell, impl): rnn, gru, lstm; scratch before concise; an impl's variant
    ('concise+additive') after the plain one."""
    parts = [str(k).partition("+") for k in key]
    return tuple(ORDER.get(base, 9) for base, _, _ in parts) + tuple(variant for _, _, variant in parts)


def group(records: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> dict[tuple, list]:
    groups: dict[tuple, list] = {}
    for record in records:
        groups.setdefault(tuple(record[k] for k in keys), []).append(record)
    return groups


# The d2l book's figures (FACTS.md): final training perplexity and tokens/s of the last epoch on a
# Tesla V100 (mxnet-cu102 1.7.0, torch 1.12.0+cu102), hidden 512 (scratch RNN) or 256, 500 epochs.
BOOK_HARDWARE = "d2l book, Tesla V100, train ppl after 500 epochs"
BOOK = {  # (cell, impl) -> {backend: (train perplexity, tokens/s)}
    ("rnn", "scratch"): {"mxnet": (1.0, 28549), "torch": (1.2, 43616)},
    ("rnn", "concise"): {"mxnet": (1.2, 145303), "torch": (1.3, 279664)},
    ("gru", "scratch"): {"mxnet": (1.1, 11354), "torch": (1.1, 20460)},
    ("gru", "concise"): {"mxnet": (1.1, 171217), "torch": (1.0, 283913)},
    ("lstm", "scratch"): {"mxnet": (1.3, 10215), "torch": (1.1, 22161)},
    ("lstm", "concise"): {"mxnet": (1.1, 166028), "torch": (1.0, 315171)},
}
PUBLISHED_MNIST = ("Keras mnist_hierarchical_rnn 98.64% (row-then-column LSTM 128, 5 epochs); IRNN paper 97% "
                   "(sequential MNIST): other models and configurations")
