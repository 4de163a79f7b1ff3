"""Data-parallel scaling on one machine, the body of `python -m tasks.benchmark --workers N`.

Usage: python -m tasks.benchmark --workers 2 [--backends mxnet,torch] [--cells rnn] [--impls concise]
                                 [--batch-sizes 32] [--num-steps 35] [--hidden-size 256] [--epochs 6]
                                 [--max-tokens 10000]

For each backend and each worker count 1..N, trains the character language model for --epochs
epochs on its own engine (torchrun + DistributedDataParallel, or tasks.launch + the dist_sync
KVStore), with the same global batch split by rows among the workers (strong scaling), and reads
the training tokens/s that the run records per epoch (the whole batch's tokens over the step time
of rank 0, warm-up step left out). Reports the median over epochs 2..E, the speed-up over one
worker, and the scaling efficiency, speed-up / workers. Writes scaling.json to --out.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from seqcore.backend import BACKENDS
from seqcore.errors import SeqcoreError
from seqcore.run.log import read_metrics

ROOT = Path(__file__).resolve().parents[2]  # the checkout: seqcore/report/scaling.py


def command(backend: str, workers: int, args: list[str]) -> list[str]:
    if workers == 1:
        return [sys.executable, *args]
    if backend == "torch":
        with socket.socket() as probe:  # a free port for torchrun's rendezvous
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(workers),
                "--master-port", str(port), *args]
    return [sys.executable, "-m", "tasks.launch", "-n", str(workers), "--", *args]


def measure(backend: str, workers: int, task_args: list[str], folder: Path) -> dict[str, Any]:
    out = folder / f"{backend}-{workers}"
    args = ["-m", "tasks.char_lm", "--backend", backend, *task_args, "--out", str(out)]
    done = subprocess.run(command(backend, workers, args), cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")] or done.stderr.splitlines()
        raise SeqcoreError(f"The {backend} run on {workers} workers failed: {(lines or ['?'])[-1]}")
    records = read_metrics(out / "metrics.jsonl")
    speeds = [r["tokens_per_s"] for r in records if r["kind"] == "epoch" and r["epoch"] > 1]
    return {"backend": backend, "workers": workers, "tokens_per_s": statistics.median(speeds),
            "epochs": speeds, "world_size": records[0].get("world_size", 1)}


def run(workers: int, backends: Sequence[str], task_args: list[str], out: Path) -> list[dict[str, Any]]:
    if workers < 1:
        raise SeqcoreError(f"--workers must be at least 1, got {workers}.")
    bad = sorted(set(backends) - set(BACKENDS))
    if bad or not backends:
        raise SeqcoreError(f"Unknown backend(s) {bad or 'none given'}: choose from {', '.join(BACKENDS)}.")
    rows = []
    with tempfile.TemporaryDirectory(prefix="seqcore-scaling-") as folder:
        for backend in backends:  # one run at a time, so that runs never compete for the cores
            for count in range(1, workers + 1):
                rows.append(measure(backend, count, task_args, Path(folder)))
    for row in rows:
        single = next(r for r in rows if r["backend"] == row["backend"] and r["workers"] == 1)["tokens_per_s"]
        row["speedup"] = row["tokens_per_s"] / single
        row["efficiency"] = row["speedup"] / row["workers"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(rows, indent=1))
    return rows


def format_table(rows: list[dict[str, Any]], description: str) -> str:
    lines = ["| backend | workers | tokens/s | speed-up | scaling efficiency |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['backend']} | {r['workers']} | {r['tokens_per_s']:,.0f} | {r['speedup']:.2f}x | "
              f"{100 * r['efficiency']:.0f}% |" for r in rows]
    return "\n".join([*lines, description])
