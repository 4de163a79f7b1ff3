"""Training-step throughput of every backend x cell x impl, side by side on one machine.

Usage: python -m tasks.benchmark [--backends mxnet,torch] [--cells rnn,gru,lstm] [--impls scratch,concise]
                                 [--device cpu] [--batch-size 32] [--num-steps 35] [--hidden-size 256]

Each backend runs in its own process (`--worker`), over the same Time Machine batches and
weights; a step is the full protocol (forward, backward, clip, update) with the loss read
every step, as in training. Prints tokens/s, milliseconds per step and peak memory, with the
machine and versions, and the ratio of each backend to the first one; writes benchmark.json
and benchmark.png to --out.
"""
from __future__ import annotations

import argparse
import itertools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from seqcore.backend import BACKENDS, load_backend
from seqcore.errors import SeqcoreError
from seqcore.lm import model_spec, prepare_data, time_major
from seqcore.outdir import describe
from seqcore.params import init_params
from seqcore.reports import machine_info
from seqcore.sampling import sequential_batches
from seqcore.specs import Cell, Device, Impl, Loss, Optimizer, parse_enum
from seqcore.training import train_epoch

from .cli import run_main


def measure(backend_name: str, cells: Sequence[str], impls: Sequence[str], device: str, batch_size: int,
            num_steps: int, hidden_size: int, steps: int, warmup: int) -> dict[str, Any]:
    """In the worker process: time `steps` training steps after `warmup` for each model."""
    backend = load_backend(backend_name)
    where = backend.resolve_device(Device(device))
    data = prepare_data(None, "char", None, 0.1, batch_size, num_steps)
    batches = [time_major(b) for b in sequential_batches(data.train_ids, batch_size, num_steps, offset=0)]
    batches = [b for b in batches if b[0].shape[0] == num_steps]  # whole windows only: equal work per step
    results = []
    for cell, impl in itertools.product(cells, impls):
        spec = model_spec(cell, impl, len(data.vocab), hidden_size, 1)
        model = backend.build_model(spec, init_params(spec, "uniform", 0), where)
        trainer = backend.make_trainer(model, Optimizer.SGD, 1.0)
        run = [batches[i % len(batches)] for i in range(warmup + steps)]
        started = time.perf_counter()
        stats = train_epoch(backend, model, trainer, run, loss=Loss.CROSS_ENTROPY, clip=1.0,
                            carry_state=True, warmup_steps=warmup)
        results.append({"cell": cell, "impl": impl, "tokens_per_s": stats.tokens_per_second,
                        "ms_per_step": 1000 * stats.timed_seconds / steps,
                        "wall_s": time.perf_counter() - started})
    return {"backend": backend_name, "device": where, "results": results,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "machine": machine_info(backend.versions())}


def run(*, backends: Sequence[str] = BACKENDS, cells: Sequence[str] = ("rnn", "gru", "lstm"),
        impls: Sequence[str] = ("scratch", "concise"), device: str = "cpu", batch_size: int = 32,
        num_steps: int = 35, hidden_size: int = 256, steps: int = 30, warmup: int = 3,
        out: str | Path = "runs/benchmark") -> list[dict[str, Any]]:
    for name, kind in (("backend", BACKENDS), ("cell", [c.value for c in Cell]), ("impl", [i.value for i in Impl])):
        chosen = {"backend": backends, "cell": cells, "impl": impls}[name]
        bad = sorted(set(chosen) - set(kind))
        if bad or not chosen:
            raise SeqcoreError(f"Unknown {name}(s) {bad or 'none given'}: choose from {', '.join(kind)}.")
    parse_enum(Device, device, "device")  # here, not in the worker: one sentence before any process starts
    if min(batch_size, num_steps, hidden_size, steps) <= 0 or warmup < 0:
        raise SeqcoreError("Sizes and --steps must be positive and --warmup non-negative.")
    check_writable(Path(out))  # before minutes of measuring, not after
    reports = []
    for name in backends:  # one after the other, so they never compete for the cores
        config = json.dumps({"cells": list(cells), "impls": list(impls), "device": device, "batch_size": batch_size,
                             "num_steps": num_steps, "hidden_size": hidden_size, "steps": steps, "warmup": warmup})
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
    base = {(r["cell"], r["impl"]): r["tokens_per_s"] for r in reports[0]["results"]}
    lines = ["| backend | device | model | tokens/s | ms/step | vs " + reports[0]["backend"] + " |",
             "| --- | --- | --- | --- | --- | --- |"]
    for report in reports:
        for r in report["results"]:
            ratio = r["tokens_per_s"] / base[(r["cell"], r["impl"])]
            lines.append(f"| {report['backend']} | {report['device']} | {r['impl']} {r['cell']} | "
                         f"{r['tokens_per_s']:,.0f} | {r['ms_per_step']:.2f} | {ratio:.2f}x |")
    for report in reports:
        machine = report["machine"]
        lines.append(f"{report['backend']}: peak RSS {report['peak_rss_mb']:.0f} MB; " +
                     ", ".join(f"{k} {v}" for k, v in machine.items()))
    return "\n".join(lines)


def _write(reports: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(reports, indent=1))
    labels = [f"{r['impl']}\n{r['cell']}" for r in reports[0]["results"]]
    x = np.arange(len(labels))
    width = 0.8 / len(reports)
    figure, axes = plt.subplots(figsize=(7, 4), dpi=120)
    for index, report in enumerate(reports):
        axes.bar(x + index * width, [r["tokens_per_s"] for r in report["results"]], width,
                 label=f"{report['backend']} ({report['device']})")
    axes.set(xticks=x + width * (len(reports) - 1) / 2, xticklabels=labels, ylabel="tokens/s",
             title="training step throughput, same batches and weights")
    axes.legend()
    figure.tight_layout()
    figure.savefig(out / "benchmark.png")
    plt.close(figure)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--worker"]:  # internal: one backend in this process, JSON on stdout
        print(json.dumps(measure(argv[1], **json.loads(argv[2]))))
        return 0
    parser = argparse.ArgumentParser(prog="python -m tasks.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--cells", default="rnn,gru,lstm")
    parser.add_argument("--impls", default="scratch,concise")
    parser.add_argument("--device", choices=[d.value for d in Device], default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-steps", type=int, default=35)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per model (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--out", default="runs/benchmark")
    args = parser.parse_args(argv)
    split = lambda text: [part for part in text.split(",") if part]
    reports = run(backends=split(args.backends), cells=split(args.cells), impls=split(args.impls),
                  device=args.device, batch_size=args.batch_size, num_steps=args.num_steps,
                  hidden_size=args.hidden_size, steps=args.steps, warmup=args.warmup, out=args.out)
    print(format_table(reports))
    save(reports, Path(args.out))
    print(f"benchmark.json and benchmark.png written to {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
