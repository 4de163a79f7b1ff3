"""Data-parallel scaling on one machine, the body of `python -m tasks.benchmark --workers N`.

Usage: python -m tasks.benchmark --workers 2 [--backends mxnet,torch] [--cells rnn] [--impls concise]
                                 [--batch-sizes 32] [--num-steps 35] [--hidden-size 256] [--epochs 6]
                                 [--max-tokens 10000] [--out DIR] [--resume | --overwrite]

For each backend and each worker count 1..N, trains the character language model for --epochs
epochs on its own engine (torchrun + DistributedDataParallel, or tasks.launch + the dist_sync
KVStore), with the same global batch split by rows among the workers (strong scaling), and reads
the training tokens/s that the run records per epoch (the whole batch's tokens over the step time
of rank 0, warm-up step left out). Reports the median over epochs 2..E, the speed-up over one
worker, and the scaling efficiency, speed-up / workers. Writes scaling.json to --out after every
run (the runs themselves go to --out/runs/BACKEND-N); SIGINT or SIGTERM stops the run in progress,
keeps the rows measured before it, and --resume measures the rest.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import sys
from pathlib import Path
from typing import Any, Sequence

from seqcore.backend import BACKENDS
from seqcore.errors import SeqcoreError
from seqcore.report.folder import BENCHMARK, ToolFolder
from seqcore.run.folder import describe
from seqcore.run.log import read_metrics
from seqcore.run.processes import Owner
from seqcore.run.session import RunInterrupted

ROOT = Path(__file__).resolve().parents[2]  # the checkout: seqcore/report/scaling.py
RESULTS = "scaling.json"


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


def measure(owner: Owner, backend: str, workers: int, task_args: list[str], folder: Path) -> dict[str, Any]:
    """One run, in the caller's working directory (its relative paths mean what the user meant)
    with the checkout on PYTHONPATH; a stop passes on to it (the launchers pass it to their workers)."""
    out = (folder / f"{backend}-{workers}").resolve()
    args = ["-m", "tasks.char_lm", "--backend", backend, *task_args, "--out", str(out), "--overwrite"]
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    done = owner.run(command(backend, workers, args), env={**os.environ, "PYTHONPATH": path}, on_stop=signal.SIGTERM)
    if owner.stopped:
        return {}
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")] or done.stderr.splitlines()
        raise SeqcoreError(f"The {backend} run on {workers} workers failed: {(lines or ['?'])[-1]}")
    records = read_metrics(out / "metrics.jsonl")
    speeds = [r["tokens_per_s"] for r in records if r["kind"] == "epoch" and r["epoch"] > 1]
    return {"backend": backend, "workers": workers, "tokens_per_s": statistics.median(speeds),
            "epochs": speeds, "world_size": records[0].get("world_size", 1)}


def run(workers: int, backends: Sequence[str], task_args: list[str], out: Path, *, resume: bool = False,
        overwrite: bool = False) -> list[dict[str, Any]]:
    if workers < 1:
        raise SeqcoreError(f"--workers must be at least 1, got {workers}.")
    bad = sorted(set(backends) - set(BACKENDS))
    if bad or not backends:
        raise SeqcoreError(f"Unknown backend(s) {bad or 'none given'}: choose from {', '.join(BACKENDS)}.")
    backends = list(dict.fromkeys(backends))
    identity = {"mode": "scaling", "workers": workers, "backends": backends, "task_args": task_args}
    with ToolFolder(out, BENCHMARK, identity, resume=resume, overwrite=overwrite) as folder, Owner() as owner:
        rows = _saved_rows(out) if folder.continued else []
        for backend in backends:  # one run at a time, so that runs never compete for the cores
            for count in range(1, workers + 1):
                if any(r["backend"] == backend and r["workers"] == count for r in rows):
                    print(f"{backend} on {count} workers: measured earlier, kept", flush=True)
                    continue
                print(f"{backend} on {count} workers: running ...", flush=True)
                row = measure(owner, backend, count, task_args, out / "runs")
                if owner.stopped:
                    _write(rows, out)
                    raise RunInterrupted(f"Stopped by {owner.signal_name} while {backend} ran on {count} workers; "
                                         f"what was measured before ({len(rows)} of {len(backends) * workers} "
                                         f"rows) is in {out / RESULTS}; the same command with --resume measures "
                                         f"the rest.", owner.signum)
                rows.append(row)
                _write(rows, out)
    return rows


def _saved_rows(out: Path) -> list[dict[str, Any]]:
    path = out / RESULTS
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise SeqcoreError(f"{path} is damaged; replace it with --overwrite.") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"backend", "workers"} <= set(r) for r in rows):
        raise SeqcoreError(f"{path} is not a scaling benchmark's results; replace it with --overwrite.")
    return rows


def _write(rows: list[dict[str, Any]], out: Path) -> None:
    """scaling.json with every row's speed-up over the same backend's one worker (where measured)."""
    for row in rows:
        single = next((r for r in rows if r["backend"] == row["backend"] and r["workers"] == 1), None)
        if single is not None:
            row["speedup"] = row["tokens_per_s"] / single["tokens_per_s"]
            row["efficiency"] = row["speedup"] / row["workers"]
    temp = out / f".{RESULTS}.tmp"
    try:
        temp.write_text(json.dumps(rows, indent=1))
        os.replace(temp, out / RESULTS)  # whole or not at all: a stop never leaves half a file
    except OSError as error:
        raise SeqcoreError(f"{out} could not take the results ({describe(error)}).") from None


def format_table(rows: list[dict[str, Any]], description: str) -> str:
    lines = ["| backend | workers | tokens/s | speed-up | scaling efficiency |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['backend']} | {r['workers']} | {r['tokens_per_s']:,.0f} | {r['speedup']:.2f}x | "
              f"{100 * r['efficiency']:.0f}% |" for r in rows]
    return "\n".join([*lines, description])
