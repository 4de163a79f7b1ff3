"""The cross-framework comparison report: every task on every backend, one command, one page.

Usage: python -m tasks.compare --tasks char_lm,mnist_rows,sine,hello,translate --backends mxnet,torch \\
           --cells rnn,gru,lstm --impls scratch,concise --device cpu --out runs/reports/NAME [--quick] [--seeds K]
       python -m tasks.compare --out runs/reports/NAME --from RUN_DIR [RUN_DIR ...]
       python -m tasks.compare --tasks char_lm --cells lstm --impls concise --out runs/reports/lstm -- --epochs 50

Every run goes through the run layer into REPORT/runs/TASK/BACKEND-CELL-IMPL[-seedS], as its own
process (one framework per process), one at a time. Running the same command again keeps the
finished runs and resumes the interrupted ones; a failed run is shown with its error. --quick
shrinks every task to minutes; without it each task uses the seeds' and the book's configuration
(char LM: d2l's 500 epochs; MNIST: the seed000 preset; translation: the d2l-1.0 preset, each cell x
impl without and with additive attention). Flags after `--` are passed to every run.
--from builds the report from finished run folders (of any tasks, e.g. PyTorch trained on a GPU
machine and MXNet on a CPU one).

SIGINT or SIGTERM sends the current run SIGTERM (it checkpoints and stops) and kills a cross-check
at once; a benchmark keeps the backends it measured. If this command is killed (SIGKILL), the
kernel stops its children alike (seqcore.run.processes). Run the same command again to continue.

Writes report.html (self-contained), report.md, results.json, results.csv and figures/ to --out.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
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
from seqcore.report.folder import BENCHMARK as BENCHMARK_MARK
from seqcore.report.folder import REPORT, ToolFolder
from seqcore.report.grid import TASKS, Grid, plan
from seqcore.run.processes import Owner
from seqcore.run.session import RunInterrupted

from .cli import (Options, choices, device_option, names_option, option, out_option, overwrite_option, parse_options,
                  run_main, split_at_dashes)

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


def cross_checks(owner: Owner, report: Path, records: Sequence[dict], backends: Sequence[str],
                 device: str) -> dict[str, list]:
    """Each finished run's checkpoint on every backend, each backend in its own process: logits max |Δ|,
    and char_lm validation perplexity (translate: held-out loss) on the backend that did not train it."""
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
        done_process = owner.run([sys.executable, "-m", "tasks.crosscheck", "--backend", backend, "--device",
                                  device, "--runs", str(folder / "runs.json"), "--out", str(folder / backend)],
                                 on_stop=signal.SIGKILL)  # a check cut short has nothing to keep
        if owner.stopped:
            raise RunInterrupted(f"Stopped by {owner.signal_name} during the cross-checks, after every run had "
                                 f"finished; run the same command again to finish the report.", owner.signum)
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
        measured = {x["folder"]: x for x in output["cross_eval"]}
        for record in done:
            if record["folder"] in measured:
                figure = measured[record["folder"]]["figure"]  # val_ppl (char_lm) or val_loss (translate)
                result["cross_eval"].append({"task": record["task"], "figure": figure,
                                             "model": f"{record['cell']} {record['impl']} seed {record['seed']}",
                                             "trained_on": record["backend"], "evaluated_on": backend,
                                             "own": record["summary"].get(figure),
                                             "other": measured[record["folder"]]["value"]})
    return result


def benchmark(owner: Owner, report: Path, identity: dict, replace: bool
              ) -> tuple[Optional[list], Optional[Path], Optional[str]]:
    """tasks.benchmark into REPORT/benchmark: continued (--resume) where an earlier invocation was
    stopped, replaced when the report's settings changed (`replace`), kept when it is complete."""
    folder = report / "benchmark"
    results, png = folder / "benchmark.json", folder / "benchmark.png"
    if not replace and results.is_file() and png.is_file():
        try:
            saved = json.loads(results.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = []
        if isinstance(saved, list) and [r.get("backend") for r in saved if isinstance(r, dict)] == identity["backends"]:
            return saved, png, None
    command = ["-m", "tasks.benchmark", "--backends", ",".join(identity["backends"]), "--cells",
               ",".join(identity["cells"]), "--impls", ",".join(identity["impls"]), "--device", identity["device"],
               *BENCHMARK[identity["scale"]], "--out", str(folder)]
    if (folder / BENCHMARK_MARK).is_file():
        command.append("--overwrite" if replace else "--resume")
    print(f"benchmark: {shlex.join(['python', *command])}", flush=True)
    done = owner.run([sys.executable, *command], on_stop=signal.SIGTERM,  # it keeps the backends it measured
                     env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    if owner.stopped:
        raise RunInterrupted(f"Stopped by {owner.signal_name} during the benchmark, after every run had finished; "
                             f"the backends it measured are kept; run the same command again to finish the report.",
                             owner.signum)
    if done.returncode != 0:
        return None, None, (done.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(results.read_text()), png, None


def from_runs(folders: Sequence[str]) -> list[dict]:
    """The records of finished run folders; one sentence on the first that is not one."""
    records = [comparison.load_run(Path(folder)) for folder in folders]
    backends = {r["backend"] for r in records}
    if len(backends) < 2:
        first = records[0]
        raise SeqcoreError(f"{first['folder']} holds a {first['task']} run on {first['backend']}, and no run of "
                           f"another backend was given; a comparison needs runs of at least two backends.")
    return records


def complete(owner: Owner, paths: dict[str, Path]) -> None:
    """A stop that came while the report was being written: it is written whole; say so and stop."""
    if owner.stopped:
        raise RunInterrupted(f"Stopped by {owner.signal_name} after the report was written; {paths['html']} is "
                             f"complete.", owner.signum)


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
        with ToolFolder(out, REPORT, identity, resume=args.resume, overwrite=args.overwrite, continue_same=True,
                        resume_any=True), Owner() as owner:
            checks = cross_checks(owner, out, records, backends, "cpu")
            paths = build(out, records, backends, command=command, crosscheck=checks,
                          notes=[f"Built from {len(records)} finished run folders (--from)."])
            complete(owner, paths)
    else:
        identity = {**validated(args), "extra": extra}
        planned = plan(out, identity["tasks"], identity["backends"], identity["cells"], identity["impls"],
                       identity["device"], identity["scale"], identity["seeds"], identity["mnist_dir"], extra)
        with ToolFolder(out, REPORT, identity, resume=args.resume, overwrite=args.overwrite, continue_same=True,
                        resume_any=True) as folder, Owner() as owner:
            grid = Grid(out, planned)
            records = grid.run(owner)
            checks = cross_checks(owner, out, records, identity["backends"], identity["device"])
            replace = folder.previous is not None and folder.previous != identity
            bench, png, bench_error = (benchmark(owner, out, identity, replace) if identity["benchmark"]
                                       else (None, None, None))
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
            complete(owner, paths)
    failed = sum(r["status"] != "done" for r in records)
    print(f"{len(records)} runs ({failed} failed) in {time.perf_counter() - started:.0f} s; "
          f"report: {paths['html']} ({', '.join(p.name for p in paths.values())})")
    return 0


if __name__ == "__main__":
    run_main(main)
