"""The cross-framework comparison report: every task on every backend, one command, one page.

Usage: python -m tasks.compare --tasks char_lm,mnist_rows,sine,hello --backends mxnet,torch \\
           --cells rnn,gru,lstm --impls scratch,concise --device cpu --out runs/reports/NAME [--quick] [--seeds K]
       python -m tasks.compare --out runs/reports/NAME --from RUN_DIR [RUN_DIR ...]
       python -m tasks.compare --tasks char_lm --cells lstm --impls concise --out runs/reports/lstm -- --epochs 50

Every run goes through the run layer into REPORT/runs/TASK/BACKEND-CELL-IMPL[-seedS], as its own
process (one framework per process), one at a time. Running the same command again keeps the
finished runs and resumes the interrupted ones; a failed run is shown with its error. --quick
shrinks every task to minutes; without it each task uses the seeds' and the book's configuration
(char LM: d2l's 500 epochs; MNIST: the seed000 preset). Flags after `--` are passed to every run.
--from builds the report from finished run folders (of any tasks, e.g. PyTorch trained on a GPU
machine and MXNet on a CPU one).

Writes report.html (self-contained), report.md, results.json, results.csv and figures/ to --out.
"""
from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from seqcore.backend import BACKENDS
from seqcore.errors import ConfigError, SeqcoreError
from seqcore.model.spec import Cell, Impl
from seqcore.report import records as comparison
from seqcore.report.build import build
from seqcore.report.grid import TASKS, Grid, plan

from .cli import (Options, choices, device_option, names_option, option, out_option, overwrite_option, parse_options,
                  run_main, split_at_dashes)

REPORT = "report.json"  # marks a folder as a comparison report, with the command that made it
BENCHMARK = {"full": [], "quick": ["--steps", "5", "--repeats", "3", "--warmup", "2"],
             "tiny": ["--steps", "2", "--repeats", "2", "--warmup", "1", "--batch-sizes", "4", "--num-steps", "5",
                      "--hidden-size", "8"]}


@dataclasses.dataclass(frozen=True)
class CompareOptions(Options):
    tasks: tuple[str, ...] = names_option(TASKS, TASKS, "the tasks", group="grid")
    backends: tuple[str, ...] = names_option(BACKENDS, BACKENDS, "the backends", group="grid")
    cells: tuple[str, ...] = names_option(choices(Cell), choices(Cell), "the cells", group="grid")
    impls: tuple[str, ...] = names_option(choices(Impl), choices(Impl), "the impls", group="grid")
    device: str = device_option("cpu", "where every run trains", group="grid")
    quick: bool = option(False, "every task shrunk so the whole grid takes minutes", group="grid")
    tiny: bool = option(False, "the smallest sizes that exercise every path (tests)", group="grid")
    seeds: int = option(1, "seeds per backend", group="grid", check="positive")
    benchmark: bool = option(True, "skip the speed section", group="grid")
    mnist_dir: Optional[str] = option(None, "MNIST files for mnist_rows (its --data-dir)", group="grid",
                                      metavar="DIR")
    out: str = out_option("runs/reports/report", "the report folder")
    resume: bool = option(False, "continue the report in --out, even if made by another command", group="output")
    overwrite: bool = overwrite_option("replace the report in --out")
    runs: Optional[tuple[str, ...]] = option(None, "build the report from these finished run folders instead of "
                                             "training", group="output", flag="--from", many="list", metavar="DIR")
    extra: tuple[str, ...] = option((), "the flags after --, passed to every run", command_line=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("tasks", "backends", "cells", "impls"):  # each once, in the order given
            object.__setattr__(self, name, tuple(dict.fromkeys(getattr(self, name))))
        if self.resume and self.overwrite:
            raise ConfigError("--resume and --overwrite exclude each other: continue the report or replace it.")
        if self.quick and self.tiny:
            raise ConfigError("--quick and --tiny exclude each other.")


def parse(argv: Sequence[str]) -> tuple[CompareOptions, list[str]]:
    own, extra = split_at_dashes(argv)
    return parse_options(CompareOptions, "python -m tasks.compare", own, __doc__, extra=tuple(extra)), extra


def validated(args: CompareOptions) -> dict[str, Any]:
    """The command's identity (stored in report.json); every flag was checked when `args` was made."""
    return {"tasks": list(args.tasks), "backends": list(args.backends), "cells": list(args.cells),
            "impls": list(args.impls), "device": args.device,
            "scale": "quick" if args.quick else "tiny" if args.tiny else "full", "seeds": args.seeds,
            "benchmark": args.benchmark, "mnist_dir": args.mnist_dir}


class ReportFolder:
    """The report folder's policy, as the run layer's: the same command continues its report;
    another command's report is refused unless --resume or --overwrite; --overwrite empties only
    a folder that holds a report; a lock refuses a second live compare on the folder."""

    def __init__(self, out: Path, identity: dict, resume: bool, overwrite: bool):
        self.out, self.identity, self.resume, self.overwrite = out, identity, resume, overwrite
        self._lock: Optional[int] = None

    def check(self) -> None:
        out = self.out
        if out.exists() and not out.is_dir():
            raise SeqcoreError(f"--out {out} is a file, not a folder.")
        saved = self._saved()
        if saved is None:
            if out.is_dir() and any(out.iterdir()):
                raise SeqcoreError(f"--out {out} is not empty and holds no report ({REPORT} is missing); "
                                   f"choose another --out.")
            if self.resume:
                raise SeqcoreError(f"--resume: {out} holds no report to continue.")
            return
        if saved.get("identity") != self.identity and not (self.resume or self.overwrite):
            differs = sorted(k for k in set(saved.get("identity", {})) | set(self.identity)
                             if saved.get("identity", {}).get(k) != self.identity.get(k))
            raise SeqcoreError(f"{out} holds the report of another command (it differs in {', '.join(differs)}); "
                               f"continue it with --resume, replace it with --overwrite, or choose another --out.")

    def _saved(self) -> Optional[dict]:
        path = self.out / REPORT
        if not path.is_file():
            return None
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise SeqcoreError(f"{path} is damaged; replace the report with --overwrite.") from None
        return saved if isinstance(saved, dict) else {}

    def __enter__(self) -> "ReportFolder":
        self.check()
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(self.out / ".report.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            raise SeqcoreError(f"Another tasks.compare is writing to {self.out}; wait for it to finish.") from None
        if self.overwrite and self._saved() is not None:
            for entry in self.out.iterdir():
                if entry.name != ".report.lock":
                    shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        saved = self._saved() or {}
        record = {"identity": self.identity, "argv": sys.argv, "created": saved.get("created", now),
                  "updated": now}
        (self.out / REPORT).write_text(json.dumps(record, indent=1))
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            os.close(self._lock)


def cross_checks(report: Path, records: Sequence[dict], backends: Sequence[str], device: str) -> dict[str, list]:
    """Each finished run's checkpoint on every backend, each backend in its own process: logits max |Δ|,
    and char_lm validation perplexity on the backend that did not train it."""
    done = [r for r in records if r["status"] == "done" and (Path(r["folder"]) / "model.safetensors").is_file()]
    result: dict[str, list] = {"logits": [], "cross_eval": [], "errors": []}
    if len(backends) < 2 or not done:
        return result
    folder = report / "crosscheck"
    folder.mkdir(parents=True, exist_ok=True)
    runs = [{"folder": r["folder"], "task": r["task"], "trained_on": r["backend"]} for r in done]
    (folder / "runs.json").write_text(json.dumps(runs))
    outputs = {}
    for backend in backends:
        print(f"cross-check on {backend} ({len(runs)} checkpoints) ...", flush=True)
        done_process = subprocess.run([sys.executable, "-m", "tasks.crosscheck", "--backend", backend, "--device",
                                       device, "--runs", str(folder / "runs.json"), "--out", str(folder / backend)],
                                      capture_output=True, text=True)
        if done_process.returncode != 0:
            last = (done_process.stderr.strip().splitlines() or ["no output"])[-1]
            result["errors"].append(f"the {backend} cross-check failed: {last}")
            continue
        outputs[backend] = json.loads(done_process.stdout.strip().splitlines()[-1])
        result["errors"] += outputs[backend]["errors"]
    if len(outputs) < 2:
        return result
    first, second = list(outputs)[:2]
    for index, record in enumerate(done):
        files = [outputs[b]["logits"].get(str(index)) for b in (first, second)]
        if None in files:
            continue
        a, b = (np.load(folder / name / file) for name, file in zip((first, second), files))
        result["logits"].append({"task": record["task"], "model": f"{record['cell']} {record['impl']} seed {record['seed']}",
                                 "trained_on": record["backend"], "backends": [first, second],
                                 "shape": "x".join(map(str, a.shape)), "max_abs": float(np.max(np.abs(a - b))),
                                 "scale": float(np.max(np.abs(a)))})
    for backend, output in outputs.items():
        measured = {x["folder"]: x["val_ppl"] for x in output["cross_eval"]}
        for record in done:
            if record["folder"] in measured:
                result["cross_eval"].append({"model": f"{record['cell']} {record['impl']} seed {record['seed']}",
                                             "trained_on": record["backend"], "evaluated_on": backend,
                                             "own": record["value"], "other": measured[record["folder"]]})
    return result


def benchmark(report: Path, identity: dict) -> tuple[Optional[list], Optional[Path], Optional[str]]:
    folder = report / "benchmark"
    if (folder / "benchmark.json").is_file():
        return json.loads((folder / "benchmark.json").read_text()), folder / "benchmark.png", None
    command = ["-m", "tasks.benchmark", "--backends", ",".join(identity["backends"]), "--cells",
               ",".join(identity["cells"]), "--impls", ",".join(identity["impls"]), "--device", identity["device"],
               *BENCHMARK[identity["scale"]], "--out", str(folder)]
    print(f"benchmark: {shlex.join(['python', *command])}", flush=True)
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    if done.returncode != 0:
        return None, None, (done.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads((folder / "benchmark.json").read_text()), folder / "benchmark.png", None


def from_runs(folders: Sequence[str]) -> list[dict]:
    """The records of finished run folders; one sentence on the first that is not one."""
    records = [comparison.load_run(Path(folder)) for folder in folders]
    backends = {r["backend"] for r in records}
    if len(backends) < 2:
        first = records[0]
        raise SeqcoreError(f"{first['folder']} holds a {first['task']} run on {first['backend']}, and no run of "
                           f"another backend was given; a comparison needs runs of at least two backends.")
    return records


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args, extra = parse(argv)
    command = shlex.join(["python", "-m", "tasks.compare", *argv])
    out = Path(args.out)
    started = time.perf_counter()
    if args.runs:
        records = from_runs(args.runs)  # before the folder is touched
        backends = list(dict.fromkeys(r["backend"] for r in records))
        identity = {"from": [str(Path(f).resolve()) for f in args.runs]}
        with ReportFolder(out, identity, args.resume, args.overwrite):
            checks = cross_checks(out, records, backends, "cpu")
            paths = build(out, records, backends, command=command, crosscheck=checks,
                          notes=[f"Built from {len(records)} finished run folders (--from)."])
    else:
        identity = {**validated(args), "extra": extra}
        planned = plan(out, identity["tasks"], identity["backends"], identity["cells"], identity["impls"],
                       identity["device"], identity["scale"], identity["seeds"], identity["mnist_dir"], extra)
        with ReportFolder(out, identity, args.resume, args.overwrite):
            grid = Grid(out, planned)
            records = grid.run()
            checks = cross_checks(out, records, identity["backends"], identity["device"])
            bench, png, bench_error = benchmark(out, identity) if identity["benchmark"] else (None, None, None)
            elapsed = time.perf_counter() - started
            notes = [f"Sizes: {identity['scale']}" + (" (every task shrunk to minutes; not the published "
                                                      "configurations)" if identity["scale"] != "full" else
                                                      " (the seeds' and the book's configurations)") +
                     f"; {len(planned)} runs, {len(grid.started)} trained by this invocation, "
                     f"{len(planned) - len(grid.started)} kept from an earlier one; this invocation took "
                     f"{elapsed:.0f} s; the runs' own wall time (inside the run layer, without process "
                     f"start-up) sums to {sum(r['wall_s'] or 0 for r in records):.0f} s."]
            if bench_error:
                notes.append(f"The benchmark failed: {bench_error}")
            paths = build(out, records, identity["backends"], command=command, crosscheck=checks,
                          benchmark=bench, benchmark_png=png, notes=notes)
    failed = sum(r["status"] != "done" for r in records)
    print(f"{len(records)} runs ({failed} failed) in {time.perf_counter() - started:.0f} s; "
          f"report: {paths['html']} ({', '.join(p.name for p in paths.values())})")
    return 0


if __name__ == "__main__":
    run_main(main)
