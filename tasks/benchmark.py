"""Training-step throughput of every backend x cell x impl against each framework's own loop.

Usage: python -m tasks.benchmark [--backends mxnet,torch] [--cells rnn,gru,lstm] [--impls scratch,concise]
                                 [--device cpu] [--batch-sizes 32] [--num-steps 35] [--hidden-size 256]
                                 [--token char|word] [--repeats 5] [--steps 10]
       python -m tasks.benchmark --workers 2     # data-parallel scaling, 1..N workers (seqcore/report/scaling.py)

Each backend runs in its own process (`--worker`), over the same Time Machine batches; a step is
the full protocol (forward, backward, clip, update) with the loss read every step, as in
training. Beside every seqcore model the same process times the framework's bare loop (a fused
layer and a dense head written as the framework's users write it: backends/<name>/bare.py), the
two interleaved repetition by repetition, so the ratio seqcore / bare is measured side by side.
Prints median tokens/s with the spread (min-max) over the repetitions, generation tokens/s, peak
memory, the machine and versions; writes benchmark.json and benchmark.png to --out (a new folder,
by default the next runs/benchmark/version_N; --resume measures the backends an interrupted
benchmark there lacks, --overwrite replaces it). SIGINT or SIGTERM stops the backend being
measured; the ones measured before it are written and printed.

--token word trains on the whole book's words (a vocabulary of about 4,600) through an embedding
(--embed-size), the configuration where a one-hot input is too wide.

--compile adds PyTorch's scratch models with their time loop through torch.compile (rows
"scratch-compiled"); the compile runs in the warm-up, and its seconds are reported beside the rows.

--task translate measures the encoder-decoder of tasks.translate instead (each cell x impl x
--attentions, rows "concise+additive" ...) on the book's pairs cut to --num-steps (default 9),
with Adam and the masked loss, beside the framework's bare encoder-decoder loop (the book's
attention modules written out): attention's cost against none, and seqcore's against the bare
loop. The book's configuration: --batch-sizes 128 --hidden-size 256 --num-layers 2.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import resource
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from seqcore.backend import BACKENDS, Device, Optimizer, load_backend, load_part
from seqcore.checks import parse_enum
from seqcore.data.sampling import sequential_batches
from seqcore.errors import ConfigError, SeqcoreError
from seqcore.jobs.generate import predict_ids
from seqcore.jobs.lm import model_spec, prepare_data, time_major
from seqcore.model.params import init_params
from seqcore.model.seq2seq import Attention
from seqcore.model.spec import Cell, Impl, InputKind, Loss
from seqcore.report import scaling
from seqcore.report.folder import BENCHMARK, ToolFolder
from seqcore.run.folder import describe, next_version
from seqcore.run.machine import machine_info
from seqcore.run.processes import Owner
from seqcore.run.session import RunInterrupted
from seqcore.train.loop import train_epoch

from .benchmark_translation import measure_translation
from .cli import (Options, batch_size_option, choices, device_option, names_option, num_steps_option, option,
                  out_option, overwrite_option, parse_options, run_main)

GENERATED = 100  # tokens generated after a 10-token prefix, for the generation figure
COMPILED = "scratch-compiled"  # the row of a scratch model trained through torch.compile (--compile)
DEFAULT_OUT = "runs/benchmark"
NEXT_OUT = f"the next {DEFAULT_OUT}/version_N"


def spread(samples: Sequence[float]) -> dict[str, Any]:
    """Median, min and max of per-repetition tokens/s."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "samples": list(samples)}


class SeqcoreLoop:
    """A seqcore model trained through the protocol, with its state carried between calls."""

    def __init__(self, backend, spec, device: str):
        self.backend = backend
        self.model = backend.build_model(spec, init_params(spec, "uniform", 0), device)
        self.trainer = backend.make_trainer(self.model, Optimizer.SGD, 1.0)
        self.carry = None

    def run(self, batches) -> float:
        def keep(step, stats, carry):
            self.carry = carry
        started = time.perf_counter()
        train_epoch(self.backend, self.model, self.trainer, batches, loss=Loss.CROSS_ENTROPY, clip=1.0,
                    carry_state=True, on_span=keep, carry=self.carry)
        return time.perf_counter() - started  # span 1: the per-step loss read synchronises the device

    def generate(self, prefix, num_preds: int) -> float:
        started = time.perf_counter()
        predict_ids(self.backend, self.model, prefix, num_preds)
        return time.perf_counter() - started


def measure(backend_name: str, cells: Sequence[str], impls: Sequence[str], device: str,
            batch_sizes: Sequence[int], num_steps: int, hidden_size: int, steps: int, warmup: int,
            repeats: int, token: str = "char", embed_size: int = 0, compile: bool = False) -> dict[str, Any]:
    """In the worker process: for every batch size and cell, `repeats` rounds of `steps` steps of
    each seqcore impl and of the bare loop, interleaved, after `warmup` untimed steps each.
    compile (PyTorch, with scratch among the impls): also the scratch model through torch.compile."""
    backend = load_backend(backend_name)
    compiled = load_backend(backend_name, compile=True) if compile and backend_name == "torch" else None
    names = [*impls, *([COMPILED] if compiled is not None and Impl.SCRATCH.value in impls else [])]
    bare = load_part(backend_name, "bare")
    where = backend.resolve_device(Device(device))
    input_kind = InputKind.EMBEDDING if embed_size else InputKind.ONEHOT
    results = []
    for batch_size in batch_sizes:
        data = prepare_data(None, token, None, 0.1, batch_size, num_steps)
        vocab_size = len(data.vocab)
        windows = [time_major(b) for b in sequential_batches(data.train_ids, batch_size, num_steps, offset=0)]
        windows = [b for b in windows if b[0].shape[0] == num_steps]  # whole windows: equal work per step
        prefix = data.train_ids[:10].tolist()
        tokens = steps * num_steps * batch_size
        for cell in cells:
            spec = lambda impl: model_spec(cell, impl, vocab_size, hidden_size, 1, input_kind, embed_size)
            loops = {name: SeqcoreLoop(compiled if name == COMPILED else backend,
                                       spec(Impl.SCRATCH.value if name == COMPILED else name), where)
                     for name in names}
            loops["bare"] = bare.Loop(cell, vocab_size, hidden_size, where, embed_size=embed_size)
            _reset_peak_memory(backend_name, where)
            cursor = itertools.count()
            take = lambda n: [windows[next(cursor) % len(windows)] for _ in range(n)]
            warmup_s = {name: loop.run(take(warmup)) for name, loop in loops.items()}  # compiles happen here
            seconds: dict[str, list[float]] = {name: [] for name in loops}
            for _ in range(repeats):
                for name, loop in loops.items():  # interleaved: drifts in machine load hit each alike
                    seconds[name].append(loop.run(take(steps)))
            memory = _peak_memory_mb(backend_name, where)
            generation = {name: GENERATED / loop.generate(prefix, GENERATED) for name, loop in loops.items()}
            bare_speed = spread([tokens / s for s in seconds["bare"]])
            for impl in names:
                speed = spread([tokens / s for s in seconds[impl]])
                results.append({
                    "cell": cell, "impl": impl, "batch_size": batch_size, "vocab_size": vocab_size,
                    "tokens_per_s": speed["median"], "spread": speed,
                    "ms_per_step": 1000 * statistics.median(seconds[impl]) / steps,
                    "bare_tokens_per_s": bare_speed["median"], "bare_spread": bare_speed,
                    "vs_bare": speed["median"] / bare_speed["median"],
                    "generate_tokens_per_s": generation[impl], "bare_generate_tokens_per_s": generation["bare"],
                    "peak_device_mb": memory,
                    **({"compile_s": warmup_s[impl]} if impl == COMPILED else {})})
    return {"backend": backend_name, "device": where, "token": token, "embed_size": embed_size,
            "num_steps": num_steps, "hidden_size": hidden_size, "steps": steps, "repeats": repeats, "warmup": warmup,
            "results": results, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "machine": machine_info(backend.versions())}


def _reset_peak_memory(backend_name: str, device: str) -> None:
    """PyTorch on a GPU counts its peak allocation per model; elsewhere only the process RSS is known."""
    if backend_name == "torch" and device == "gpu":
        import torch  # this worker process runs PyTorch only
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_mb(backend_name: str, device: str) -> Optional[float]:
    """The peak device allocation since `_reset_peak_memory`, where the framework counts one."""
    if backend_name == "torch" and device == "gpu":
        import torch
        return torch.cuda.max_memory_allocated() / 2**20
    return None


def run(*, backends: Sequence[str] = BACKENDS, cells: Sequence[str] = ("rnn", "gru", "lstm"),
        impls: Sequence[str] = ("scratch", "concise"), device: str = "cpu", batch_sizes: Sequence[int] = (32,),
        num_steps: int = 35, hidden_size: int = 256, steps: int = 10, warmup: int = 3, repeats: int = 5,
        token: str = "char", embed_size: Optional[int] = None, compile: bool = False,
        out: str | Path = "runs/benchmark/version_0", resume: bool = False,
        overwrite: bool = False, task: str = "lm", attentions: Sequence[str] = ("none", "additive"),
        num_layers: int = 2) -> list[dict[str, Any]]:
    """Every backend measured in a worker process of its own, one after the other; benchmark.json is
    rewritten after each, so that a stop (a signal: the worker is killed) or a failure keeps them, and
    --resume measures the rest. Prints the table of what was measured and draws benchmark.png."""
    for name, kind in (("backend", BACKENDS), ("cell", [c.value for c in Cell]), ("impl", [i.value for i in Impl])):
        chosen = {"backend": backends, "cell": cells, "impl": impls}[name]
        bad = sorted(set(chosen) - set(kind))
        if bad or not chosen:
            raise SeqcoreError(f"Unknown {name}(s) {bad or 'none given'}: choose from {', '.join(kind)}.")
    parse_enum(Device, device, "device")  # here, not in the worker: one sentence before any process starts
    if token not in ("char", "word"):
        raise SeqcoreError(f"Unknown --token {token!r}: choose char or word.")
    embed_size = (64 if token == "word" else 0) if embed_size is None else embed_size
    if (not batch_sizes or min(*batch_sizes, num_steps, hidden_size, steps, repeats) <= 0
            or warmup < 0 or embed_size < 0):
        raise SeqcoreError("Sizes, --steps and --repeats must be positive, --warmup and --embed-size non-negative.")
    if compile and ("torch" not in backends or Impl.SCRATCH.value not in impls or warmup < 1):
        raise SeqcoreError("--compile times PyTorch's scratch models through torch.compile: it needs torch among "
                           "--backends, scratch among --impls and --warmup of at least 1 (the compile's step).")
    backends = list(dict.fromkeys(backends))
    config = {"cells": list(cells), "impls": list(impls), "device": device, "batch_sizes": list(batch_sizes),
              "num_steps": num_steps, "hidden_size": hidden_size, "steps": steps, "warmup": warmup,
              "repeats": repeats, "token": token, "embed_size": embed_size, "compile": compile}
    if task == "translate":  # the encoder-decoder's own sizes (benchmark_translation.py)
        bad = sorted(set(attentions) - {a.value for a in Attention})
        if bad or not attentions or compile or num_layers <= 0:
            raise SeqcoreError("--task translate takes --attentions of none, additive, dot, a positive --num-layers "
                               "and no --compile.")
        config = {**{k: v for k, v in config.items() if k not in ("token", "compile")}, "task": task,
                  "attentions": list(attentions), "num_layers": num_layers, "embed_size": embed_size or hidden_size}
    out = Path(out)
    identity = {"mode": "throughput", "backends": backends, **config}
    # the folder is checked and locked before minutes of measuring, not after
    with ToolFolder(out, BENCHMARK, identity, resume=resume, overwrite=overwrite) as folder, Owner() as owner:
        reports = [r for r in _saved_reports(out) if r.get("backend") in backends] if folder.continued else []
        for name in backends:  # one after the other, so they never compete for the cores
            if any(r["backend"] == name for r in reports):
                print(f"{name}: measured earlier, kept", flush=True)
                continue
            started = time.perf_counter()
            print(f"{name}: measuring ...", flush=True)
            done = owner.run([sys.executable, "-m", "tasks.benchmark", "--worker", name, json.dumps(config)],
                             on_stop=signal.SIGKILL)  # a measurement cut short has nothing to keep
            if owner.stopped:
                break
            if done.returncode != 0:
                kept = f"; the backends measured before it are in {out}" if reports else ""
                last = (done.stderr.strip().splitlines() or ["no output"])[-1].rstrip(".")
                raise SeqcoreError(f"The {name} benchmark failed: {last}{kept}.")
            lines = done.stdout.strip().splitlines()
            try:
                reports.append(json.loads(lines[-1]))
            except (IndexError, ValueError):
                raise SeqcoreError(f"The {name} benchmark worker gave no results.") from None
            reports.sort(key=lambda r: backends.index(r["backend"]))
            write_results(reports, out)
            print(f"{name}: measured in {time.perf_counter() - started:.0f} s", flush=True)
        if reports:
            print(format_table(reports))
            save(reports, out)
        if owner.stopped:
            measured = [r["backend"] for r in reports]
            left = [b for b in backends if b not in measured]
            if not left:
                raise RunInterrupted(f"Stopped by {owner.signal_name} after every backend was measured; the "
                                     f"results in {out} are complete.", owner.signum)
            raise RunInterrupted(f"Stopped by {owner.signal_name} before {', '.join(left)} "
                                 f"{'was' if len(left) == 1 else 'were'} measured; "
                                 + (f"{', '.join(measured)} {'is' if len(measured) == 1 else 'are'} written to "
                                    f"{out}" if measured else "nothing was measured") +
                                 f"; the same command with --resume measures the rest.", owner.signum)
    return reports


def _saved_reports(out: Path) -> list[dict[str, Any]]:
    """The backends an earlier, interrupted benchmark in `out` measured (its benchmark.json)."""
    path = out / "benchmark.json"
    if not path.is_file():
        return []
    try:
        reports = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SeqcoreError(f"{path} is damaged; replace it with --overwrite.") from None
    if not isinstance(reports, list) or not all(isinstance(r, dict) and "backend" in r for r in reports):
        raise SeqcoreError(f"{path} is not a benchmark's results; replace it with --overwrite.")
    return reports


def write_results(reports: list[dict[str, Any]], out: Path) -> None:
    """benchmark.json, replaced whole (a stop never leaves half a file)."""
    temp = out / ".benchmark.json.tmp"
    try:
        temp.write_text(json.dumps(reports, indent=1))
        os.replace(temp, out / "benchmark.json")
    except OSError as error:
        raise SeqcoreError(f"{out} could not take the results ({describe(error)}).") from None


def save(reports: list[dict[str, Any]], out: Path) -> None:
    """benchmark.json and benchmark.png; a failed write says so in one sentence (the table is printed first)."""
    write_results(reports, out)
    try:
        _draw(reports, out)
    except OSError as error:
        raise SeqcoreError(f"The results are printed above, but {out} could not take them ({describe(error)}).") from None


def format_table(reports: list[dict[str, Any]]) -> str:
    """Markdown: one row per backend x model x batch size, then each backend's scratch / concise
    ratios and its machine."""
    lines = ["| backend | device | model | batch | tokens/s (min-max) | bare loop tokens/s | vs bare | "
             "generate tokens/s (bare) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for report in reports:
        for r in report["results"]:
            s, b = r["spread"], r["bare_spread"]
            lines.append(f"| {report['backend']} | {report['device']} | {r['impl']} {r['cell']} | {r['batch_size']} | "
                         f"{s['median']:,.0f} ({s['min']:,.0f}-{s['max']:,.0f}) | "
                         f"{b['median']:,.0f} ({b['min']:,.0f}-{b['max']:,.0f}) | {r['vs_bare']:.2f}x | "
                         f"{r['generate_tokens_per_s']:,.0f} ({r['bare_generate_tokens_per_s']:,.0f}) |")
    for report in reports:
        speed = {(r["cell"], r["impl"], r["batch_size"]): r["tokens_per_s"] for r in report["results"]}
        for name in ("scratch", COMPILED):
            ratios = [f"{cell} (batch {batch}) {speed[cell, name, batch] / speed[cell, 'concise', batch]:.2f}"
                      for cell, impl, batch in speed if impl == "concise" and (cell, name, batch) in speed]
            if ratios:
                lines.append(f"{report['backend']}: {name} / concise: " + ", ".join(ratios))
        compiles = [f"{r['cell']} (batch {r['batch_size']}) {r['compile_s']:.0f} s" for r in report["results"]
                    if "compile_s" in r]
        if compiles:
            lines.append(f"{report['backend']}: torch.compile warm-up (compile and {report['warmup']} "
                         f"steps): " + ", ".join(compiles))
    for report in reports:
        lines.append(f"{report['backend']}: {report['token']} tokens, vocabulary {report['results'][0]['vocab_size']}, "
                     f"{'embedding ' + str(report['embed_size']) if report['embed_size'] else 'one-hot'} input, "
                     f"{report['num_steps']} steps, hidden {report['hidden_size']}; median of {report['repeats']} x "
                     f"{report['steps']} steps; peak RSS {report['peak_rss_mb']:.0f} MB; " +
                     ", ".join(f"{k} {v}" for k, v in report["machine"].items()))
    return "\n".join(lines)


def _draw(reports: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key_of = lambda r: (r["impl"], r["cell"], r["batch_size"])
    # every row of every backend: scratch-compiled rows are PyTorch's only
    keys = list(dict.fromkeys(key_of(r) for report in reports for r in report["results"]))
    labels = ["\n".join([*impl.split("-"), cell, f"N={batch}"]) for impl, cell, batch in keys]
    width = 0.8 / (2 * len(reports))
    figure, axes = plt.subplots(figsize=(max(7, len(labels) * 1.1), 4), dpi=120)
    for index, report in enumerate(reports):
        for offset, key, kind in ((0, "", "seqcore"), (1, "bare_", "bare loop")):
            rows = report["results"]
            x = np.array([keys.index(key_of(r)) for r in rows])
            medians = np.array([r[f"{key}spread"]["median"] for r in rows])
            low = medians - [r[f"{key}spread"]["min"] for r in rows]
            high = np.array([r[f"{key}spread"]["max"] for r in rows]) - medians
            axes.bar(x + (2 * index + offset) * width, medians, width, yerr=[low, high], capsize=2,
                     label=f"{report['backend']} {kind} ({report['device']})", alpha=1.0 if offset == 0 else 0.55)
    axes.set(xticks=np.arange(len(keys)) + width * (2 * len(reports) - 1) / 2, xticklabels=labels,
             ylabel="tokens/s (median, min-max)",
             title="training step throughput: seqcore beside each framework's bare loop")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "benchmark.png")
    plt.close(figure)


@dataclasses.dataclass(frozen=True)
class BenchmarkOptions(Options):
    backends: tuple[str, ...] = names_option(BACKENDS, BACKENDS, "the backends", group="grid")
    cells: tuple[str, ...] = names_option(choices(Cell), choices(Cell), "the cells", group="grid")
    impls: tuple[str, ...] = names_option(choices(Impl), choices(Impl), "the impls", group="grid")
    device: str = device_option("cpu", "where every model runs", group="grid")
    batch_sizes: tuple[int, ...] = option((32,), "sequences per batch, comma-separated, e.g. 32,256,1024",
                                          group="sizes", check="positive", many="comma", metavar="N,M")
    num_steps: Optional[int] = num_steps_option(None, group="sizes", shown="35; 9 with --task translate")
    hidden_size: int = option(256, "hidden units", group="sizes", check="positive")
    task: str = option("lm", "lm: the character language model; translate: the encoder-decoder of "
                       "tasks.translate on the book's pairs", group="grid", choices=("lm", "translate"))
    attentions: tuple[str, ...] = names_option(("none", "additive"), choices(Attention),
                                               "--task translate: the decoder's attention", group="grid")
    num_layers: int = option(2, "--task translate: stacked layers of each stack", group="sizes", check="positive")
    steps: int = option(10, "timed steps per repetition", group="timing", check="positive")
    repeats: int = option(5, "repetitions: median and spread", group="timing", check="positive")
    warmup: int = option(3, "untimed steps first", group="timing", check="non_negative")
    token: str = option("char", "word: the whole book's words through an embedding", group="sizes",
                        choices=("char", "word"))
    embed_size: Optional[int] = option(None, "embedding width; 0 for one-hot", group="sizes", check="non_negative",
                                       shown="0 for char, 64 for word")
    compile: bool = option(False, "also PyTorch's scratch models through torch.compile (rows scratch-compiled; "
                           "the compile happens in the warm-up)", group="grid")
    out: Optional[str] = out_option(None, "the folder for benchmark.json and benchmark.png", shown=NEXT_OUT)
    resume: bool = option(False, "continue the benchmark in --out: measure what it lacks", group="output")
    overwrite: bool = overwrite_option("replace the benchmark in --out")


@dataclasses.dataclass(frozen=True)
class ScalingOptions(Options):
    """--workers N: data-parallel scaling of one char LM configuration (seqcore.report.scaling)."""

    workers: Optional[int] = option(None, "measure 1..N workers", group="grid", required=True, check="positive")
    backends: tuple[str, ...] = names_option(BACKENDS, BACKENDS, "the backends", group="grid")
    cells: str = option("rnn", "one cell", group="grid", choices=choices(Cell))
    impls: str = option("concise", "one impl", group="grid", choices=choices(Impl))
    device: str = device_option("cpu", "where every worker trains", group="grid")
    batch_sizes: int = batch_size_option(32, "one global batch size, split among the workers", group="sizes")
    num_steps: int = num_steps_option(35, group="sizes")
    hidden_size: int = option(256, "hidden units", group="sizes", check="positive")
    max_tokens: int = option(10_000, "train on the first N characters (d2l's)", group="sizes", check="positive")
    epochs: int = option(6, "epochs per run; the median of 2..E", group="timing", check="positive")
    out: Optional[str] = out_option(None, "the folder for scaling.json and the runs", shown=NEXT_OUT)
    resume: bool = option(False, "continue the benchmark in --out: measure what it lacks", group="output")
    overwrite: bool = overwrite_option("replace the benchmark in --out")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.epochs < 2:
            raise ConfigError(f"--epochs must be at least 2 (the first one warms up), got {self.epochs}.")


def scaling_main(argv: Sequence[str]) -> int:
    """`--workers N`: data-parallel scaling on this machine (seqcore.report.scaling)."""
    args = parse_options(ScalingOptions, "python -m tasks.benchmark --workers N", argv,
                         scaling.__doc__ or "")
    task_args = ["--cell", args.cells, "--impl", args.impls, "--device", args.device,
                 "--batch-size", str(args.batch_sizes), "--num-steps", str(args.num_steps),
                 "--hidden-size", str(args.hidden_size), "--epochs", str(args.epochs),
                 "--max-tokens", str(args.max_tokens), "--eval-every", str(args.epochs),
                 "--checkpoint-every", str(args.epochs), "--no-progress", "--num-preds", "5"]
    out = Path(args.out) if args.out else next_version(Path(DEFAULT_OUT))
    rows = scaling.run(args.workers, list(args.backends), task_args, out, resume=args.resume,
                       overwrite=args.overwrite)
    print(scaling.format_table(rows, f"char LM on {args.max_tokens:,} characters, {args.impls} {args.cells}, hidden "
                             f"{args.hidden_size}, global batch "
                             f"{args.batch_sizes} x {args.num_steps} steps split among the workers, {args.device}; "
                             f"median tokens/s of epochs 2..{args.epochs}"))
    print(f"scaling.json written to {out}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:  # internal: one backend in this process, JSON on stdout
        config = json.loads(argv[2])
        measured = measure_translation if config.pop("task", "lm") == "translate" else measure
        print(json.dumps(measured(argv[1], **config)))
        return 0
    if any(arg == "--workers" or arg.startswith("--workers=") for arg in argv):  # data-parallel scaling
        return scaling_main(argv)
    args = parse_options(BenchmarkOptions, "python -m tasks.benchmark", argv, __doc__)
    out = Path(args.out) if args.out else next_version(Path(DEFAULT_OUT))
    num_steps = args.num_steps or (9 if args.task == "translate" else 35)
    run(backends=args.backends, cells=args.cells, impls=args.impls, device=args.device,
        batch_sizes=args.batch_sizes, num_steps=num_steps, hidden_size=args.hidden_size,
        steps=args.steps, warmup=args.warmup, repeats=args.repeats, token=args.token,
        embed_size=args.embed_size, compile=args.compile, out=out, resume=args.resume, overwrite=args.overwrite,
        task=args.task, attentions=args.attentions, num_layers=args.num_layers)
    print(f"benchmark.json and benchmark.png written to {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
