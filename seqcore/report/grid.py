"""The report's grid of runs: every task x backend x cell x impl (x seed) through the run layer,
each as its own `python -m tasks.TASK ... --out REPORT/runs/TASK/BACKEND-CELL-IMPL[-seedS]`
process (one framework per process), one at a time so that timings are not shared.

A finished run (a summary line in metrics.jsonl) is kept; an interrupted one continues with
`--out DIR --resume`; a failed one is recorded with its error and the grid goes on. Each run is a
child of the command's `Owner` (seqcore.run.processes): on SIGINT or SIGTERM the current run is sent
SIGTERM, checkpoints and stops, and the grid stops after it; if the command dies without that chance,
the kernel sends the run SIGTERM (it checkpoints and releases its folder). A run folder still locked
by a live process (a run stopping after its command died) is waited for, then kept or resumed.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from seqcore.errors import SeqcoreError
from seqcore.report import records as comparison
from seqcore.report.folder import is_locked
from seqcore.run.folder import LOCK
from seqcore.run.log import read_metrics
from seqcore.run.processes import Owner
from seqcore.run.session import RunInterrupted

WAIT_POLL_S = 0.5

# Per task and scale: the flags beside backend / cell / impl / device / seed. full: the seeds' and the
# book's configurations; quick: the whole grid in minutes on 2 CPU cores; tiny: for the tests.
SIZES: dict[str, dict[str, list[str]]] = {
    "char_lm": {"full": [],
                "quick": ["--epochs", "10", "--max-tokens", "5000", "--batch-size", "16", "--num-steps", "20",
                          "--hidden-size", "64", "--eval-every", "1", "--num-preds", "30"],
                "tiny": ["--epochs", "2", "--max-tokens", "600", "--batch-size", "4", "--num-steps", "5",
                         "--hidden-size", "8", "--eval-every", "1", "--num-preds", "5"]},
    "mnist_rows": {"full": ["--preset", "seed000"],
                   "quick": ["--preset", "seed000", "--hidden-size", "32", "--limit-train", "3000",
                             "--limit-test", "1000"],
                   "tiny": ["--preset", "seed000", "--hidden-size", "8", "--limit-train", "200",
                            "--limit-test", "100", "--batch-size", "50"]},
    "sine": {"full": ["--mode", "next"], "quick": ["--mode", "next", "--iterations", "100"],
             "tiny": ["--mode", "next", "--iterations", "10", "--gen-steps", "10"]},
    "hello": {"full": [], "quick": [], "tiny": ["--epochs", "5"]},
    "translate": {"full": ["--preset", "d2l-1.0"],
                  "quick": ["--preset", "d2l-1.0", "--epochs", "10", "--embed-size", "64", "--hidden-size", "64"],
                  "tiny": ["--num-pairs", "120", "--held-out", "20", "--batch-size", "16", "--num-steps", "6",
                           "--embed-size", "8", "--hidden-size", "8", "--epochs", "2", "--bleu-every", "0"]},
}
TASKS = tuple(SIZES)
# Models a task trains beside each cell and impl: (the impl label's suffix, the flags). Translation
# runs the plain encoder-decoder and Bahdanau's attention (records.py labels the latter impl+additive).
VARIANTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "translate": (("", ()), ("+additive", ("--attention", "additive"))),
}


@dataclasses.dataclass(frozen=True)
class Planned:
    task: str
    backend: str
    cell: str
    impl: str
    seed: int
    folder: Path
    args: tuple  # the task's flags, --out included

    def command(self, resume: bool = False) -> list[str]:
        if resume:
            return ["-m", f"tasks.{self.task}", "--out", str(self.folder), "--resume", "--no-progress"]
        return ["-m", f"tasks.{self.task}", *self.args]

    def pasteable(self) -> str:
        return shlex.join(["python", *self.command()])


def plan(report: Path, tasks: Sequence[str], backends: Sequence[str], cells: Sequence[str], impls: Sequence[str],
         device: str, scale: str, seeds: int, mnist_dir: Optional[str], extra: Sequence[str]) -> list[Planned]:
    planned = []
    for task in tasks:
        for cell in cells:
            for impl, (suffix, flags) in ((i, v) for i in impls for v in VARIANTS.get(task, (("", ()),))):
                for seed in range(seeds):
                    for backend in backends:
                        label = impl + suffix
                        name = f"{backend}-{cell}-{label.replace('+', '-')}" + (f"-seed{seed}" if seeds > 1 else "")
                        folder = report / "runs" / task / name
                        args = [*SIZES[task][scale], "--backend", backend, "--cell", cell, "--impl", impl, *flags,
                                "--device", device, "--seed", str(seed), "--log-every", "1", "--no-progress"]
                        if task == "mnist_rows" and mnist_dir:
                            args += ["--data-dir", mnist_dir]
                        planned.append(Planned(task, backend, cell, label, seed, folder,
                                               (*args, *extra, "--out", str(folder))))
    return planned


def finished(folder: Path) -> bool:
    path = folder / "metrics.jsonl"
    try:
        return path.is_file() and any(r.get("kind") == "summary" for r in read_metrics(path, warn=False))
    except SeqcoreError:
        return False


class Grid:
    """Runs the planned runs in order; `records` holds one record per run (finished or failed)."""

    def __init__(self, report: Path, planned: Sequence[Planned], env: Optional[dict] = None):
        self.report, self.planned = report, list(planned)
        self.env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env or {})}
        self.records: list[dict[str, Any]] = []
        self.started: list[Planned] = []  # runs this invocation trained (not kept)

    def run(self, owner: Owner) -> list[dict[str, Any]]:
        for index, item in enumerate(self.planned, start=1):
            self.records.append(self._one(index, item, owner))
            if owner.stopped:
                raise RunInterrupted(f"Stopped by {owner.signal_name} at run {index} of {len(self.planned)} "
                                     f"({item.task} {item.backend} {item.cell} {item.impl} seed {item.seed}, which "
                                     f"keeps its last checkpoint); run the same command again to continue where "
                                     f"it stopped.", owner.signum)
        return self.records

    def _one(self, index: int, item: Planned, owner: Owner) -> dict[str, Any]:
        label = f"[{index}/{len(self.planned)}] {item.task} {item.backend} {item.cell} {item.impl} seed {item.seed}"
        if is_locked(item.folder / LOCK):
            print(f"{label}: waiting for the process still writing to {item.folder} ...", flush=True)
            while is_locked(item.folder / LOCK) and not owner.stopped:
                time.sleep(WAIT_POLL_S)
        if finished(item.folder):
            print(f"{label}: finished earlier, kept", flush=True)
            return self._record(item)
        if owner.stopped:
            return comparison.failed_record(item.task, item.backend, item.cell, item.impl, item.seed, item.folder,
                                            f"not run: stopped by {owner.signal_name}", item.pasteable())
        resume = (item.folder / "config.json").is_file()
        if item.folder.is_dir() and not resume and all(p.name.startswith(".") for p in item.folder.iterdir()):
            shutil.rmtree(item.folder)  # only a lock or temp files of a run killed before its config.json
        log = self.report / "logs" / item.task / f"{item.folder.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, *item.command(resume)]
        print(f"{label}: {'resuming' if resume else 'running'} ...", end="", flush=True)
        started = time.perf_counter()
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"$ {shlex.join(['python', *item.command(resume)])}\n")
            handle.flush()
            # a stop sends the run SIGTERM (it checkpoints); so does the command's death
            child = owner.start(command, stdout=handle, stderr=subprocess.STDOUT, env=self.env,
                                death_signal=signal.SIGTERM, on_stop=signal.SIGTERM)
            code = owner.wait(child)
        print(f" {time.perf_counter() - started:.1f} s" + ("" if code == 0 else f", exit {code}"), flush=True)
        self.started.append(item)
        if code == 0 or finished(item.folder):  # a stop after its last step: the run is complete
            return self._record(item)
        return comparison.failed_record(item.task, item.backend, item.cell, item.impl, item.seed, item.folder,
                                        _error_line(log, code), item.pasteable())

    def _record(self, item: Planned) -> dict[str, Any]:
        try:
            record = comparison.load_run(item.folder)
        except SeqcoreError as error:
            return comparison.failed_record(item.task, item.backend, item.cell, item.impl, item.seed, item.folder,
                                            str(error), item.pasteable())
        record["command"] = item.pasteable()
        return record


def _error_line(log: Path, code: int) -> str:
    lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("error:", "stopped:"))]
    last = errors[-1] if errors else (lines[-1] if lines else "no output")
    return f"exit {code}: {last[:300]} (log: {log})"
