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
memory, the machine and versions; writes benchmark.json and benchmark.png to --out.

--token word trains on the whole book's words (a vocabulary of about 4,600) through an embedding
(--embed-size), the configuration where a one-hot input is too wide.

--compile adds PyTorch's scratch models with their time loop through torch.compile (rows
"scratch-compiled"); the compile runs in the warm-up, and its seconds are reported beside the rows.
"""
from __future__ import annotations

import argparse
import itertools
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from seqcore.backend import BACKENDS, Device, Optimizer, load_backend, load_part
from seqcore.checks import parse_enum
from seqcore.data.sampling import sequential_batches
from seqcore.errors import SeqcoreError
from seqcore.jobs.generate import predict_ids
from seqcore.jobs.lm import model_spec, prepare_data, time_major
from seqcore.model.params import init_params
from seqcore.model.spec import Cell, Impl, InputKind, Loss
from seqcore.report import scaling
from seqcore.run.folder import describe
from seqcore.run.machine import machine_info
from seqcore.train.loop import train_epoch

from .cli import Parser, add_version, run_main

GENERATED = 100  # tokens generated after a 10-token prefix, for the generation figure
COMPILED = "scratch-compiled"  # the row of a scratch model trained through torch.compile (--compile)


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
        out: str | Path = "runs/benchmark") -> list[dict[str, Any]]:
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
    check_writable(Path(out))  # before minutes of measuring, not after
    reports = []
    for name in backends:  # one after the other, so they never compete for the cores
        config = json.dumps({"cells": list(cells), "impls": list(impls), "device": device,
                             "batch_sizes": list(batch_sizes), "num_steps": num_steps, "hidden_size": hidden_size,
                             "steps": steps, "warmup": warmup, "repeats": repeats, "token": token,
                             "embed_size": embed_size, "compile": compile})
        done = subprocess.run([sys.executable, "-m", "tasks.benchmark", "--worker", name, config],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SeqcoreError(f"The {name} benchmark failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
        reports.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return reports


def check_writable(out: Path) -> None:
    """Refuse, in one sentence, an --out that cannot take the results."""
    probe = out / ".benchmark-write-probe"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise SeqcoreError(f"Cannot write the benchmark results to {out} ({describe(error)}).") from None


def save(reports: list[dict[str, Any]], out: Path) -> None:
    """benchmark.json and benchmark.png; a failed write says so in one sentence (the table is printed first)."""
    try:
        _write(reports, out)
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


def _write(reports: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(reports, indent=1))
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


def scaling_main(argv: Sequence[str]) -> int:
    """`--workers N`: data-parallel scaling on this machine (seqcore.report.scaling)."""
    parser = Parser(prog="python -m tasks.benchmark --workers N", description=scaling.__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, required=True, help="measure 1..N workers")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--cells", default="rnn", help="one cell (default: %(default)s)")
    parser.add_argument("--impls", default="concise", help="one impl (default: %(default)s)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-sizes", default="32", help="one global batch size (default: %(default)s)")
    parser.add_argument("--num-steps", type=int, default=35)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=10_000, help="train on the first N characters "
                        "(default: %(default)s, d2l's)")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per run; the median of 2..E (default: %(default)s)")
    parser.add_argument("--out", default="runs/benchmark")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        raise SeqcoreError(f"--epochs must be at least 2 (the first one warms up), got {args.epochs}.")
    task_args = ["--cell", args.cells, "--impl", args.impls, "--device", args.device,
                 "--batch-size", args.batch_sizes, "--num-steps", str(args.num_steps),
                 "--hidden-size", str(args.hidden_size), "--epochs", str(args.epochs),
                 "--max-tokens", str(args.max_tokens), "--eval-every", str(args.epochs),
                 "--checkpoint-every", str(args.epochs), "--no-progress", "--num-preds", "5"]
    rows = scaling.run(args.workers, [b for b in args.backends.split(",") if b], task_args, Path(args.out))
    print(scaling.format_table(rows, f"char LM on {args.max_tokens:,} characters, {args.impls} {args.cells}, hidden "
                             f"{args.hidden_size}, global batch "
                             f"{args.batch_sizes} x {args.num_steps} steps split among the workers, {args.device}; "
                             f"median tokens/s of epochs 2..{args.epochs}"))
    print(f"scaling.json written to {args.out}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:  # internal: one backend in this process, JSON on stdout
        print(json.dumps(measure(argv[1], **json.loads(argv[2]))))
        return 0
    if any(arg == "--workers" or arg.startswith("--workers=") for arg in argv):  # data-parallel scaling
        from seqcore.report.scaling import main as scaling

        return scaling(argv)
    parser = argparse.ArgumentParser(prog="python -m tasks.benchmark", description=__doc__.split("\n\n")[0])
    add_version(parser)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--cells", default="rnn,gru,lstm")
    parser.add_argument("--impls", default="scratch,concise")
    parser.add_argument("--device", choices=[d.value for d in Device], default="cpu")
    parser.add_argument("--batch-sizes", default="32", help="comma-separated, e.g. 32,256,1024 (default: %(default)s)")
    parser.add_argument("--num-steps", type=int, default=35)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repetition (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="repetitions: median and spread (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--token", choices=["char", "word"], default="char",
                        help="word: the whole book's words through an embedding (default: %(default)s)")
    parser.add_argument("--embed-size", type=int, default=None, help="embedding width; 0 for one-hot "
                        "(default: 0 for char, 64 for word)")
    parser.add_argument("--compile", action="store_true", help="also PyTorch's scratch models through "
                        "torch.compile (rows scratch-compiled; the compile happens in the warm-up)")
    parser.add_argument("--out", default="runs/benchmark")
    args = parser.parse_args(argv)
    split = lambda text: [part for part in text.split(",") if part]
    try:
        batch_sizes = [int(part) for part in split(args.batch_sizes)]
    except ValueError:
        raise SeqcoreError(f"--batch-sizes takes comma-separated integers, got {args.batch_sizes!r}.") from None
    reports = run(backends=split(args.backends), cells=split(args.cells), impls=split(args.impls),
                  device=args.device, batch_sizes=batch_sizes, num_steps=args.num_steps,
                  hidden_size=args.hidden_size, steps=args.steps, warmup=args.warmup, repeats=args.repeats,
                  token=args.token, embed_size=args.embed_size, compile=args.compile, out=args.out)
    print(format_table(reports))
    save(reports, Path(args.out))
    print(f"benchmark.json and benchmark.png written to {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
