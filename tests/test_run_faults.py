"""Faults a training run must survive, on the real command lines in subprocesses.

1. SIGINT (or SIGTERM) in the middle of an epoch, then --resume: the finished run equals an
   uninterrupted one step for step (bitwise on the CPU), and metrics.jsonl reads as one run.
2. SIGKILL at random moments, checkpoint writes included: every checkpoint left behind loads,
   every stale temp file is removed by the next resume, and the finished run still equals an
   uninterrupted one exactly.
3. A reader that closes stdout (`... | head -1`) does not stop the run.
4. Stale temp files are removed by --resume and by --overwrite; a run killed between its last
   checkpoint and its summary line is finished by --resume (it used to be refused), and one
   killed after the checkpoint of an early stop trains no further epoch (it used to train one).
5. The folder lock: a second live run is refused in one sentence; a SIGKILLed run's lock is free.

The reference and the faulted runs use the same backend on the CPU with one thread each, so
equal means equal: losses, epoch figures, summaries and final tensors are compared with ==.
"""
from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pytest

from seqcore.run.checkpoint import load_checkpoint
from tests.conftest import ROOT, assert_one_sentence, require_backend
from tests.test_mnist_loader import SHARED_MNIST

LAST, BEST = "model.safetensors", "best.safetensors"
STALE = ".model.safetensors.*.tmp"  # a checkpoint write cut off by a kill
TIMING = ("tokens_per_s", "elapsed_s", "wall_s", "tokens_per_s_last_epoch", "rows_per_s_last_epoch",
          "checkpoint", "best_checkpoint")  # figures of the clock or of the folder, not of the run

# ---------------------------------------------------------------------------------------------
# helpers


def _env() -> dict[str, str]:
    # One OpenMP / intra-op thread for every training process (see conftest.python).
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def start(task: str, args: Sequence[str], logs: Path) -> subprocess.Popen:
    """`python -m tasks.<task> *args` in the background, stdout and stderr into files under `logs`
    (files, not pipes: a pipe nobody reads could fill and stall the run)."""
    logs.mkdir(parents=True, exist_ok=True)
    number = len(list(logs.glob("*.out")))
    out, err = open(logs / f"{number}.out", "w"), open(logs / f"{number}.err", "w")
    process = subprocess.Popen([sys.executable, "-m", f"tasks.{task}", *args], cwd=ROOT, env=_env(),
                               stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    out.close(), err.close()
    process.stderr_path = logs / f"{number}.err"  # type: ignore[attr-defined]
    return process


def stderr_of(process: subprocess.Popen) -> str:
    return process.stderr_path.read_text()  # type: ignore[attr-defined]


def finish(process: subprocess.Popen, timeout: float = 900) -> str:
    """Wait for a run that must succeed; its stderr."""
    code = process.wait(timeout=timeout)
    assert code == 0, f"{process.args} exited {code}:\n{stderr_of(process)[-3000:]}"
    return stderr_of(process)


def run_task(task: str, args: Sequence[str], timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"tasks.{task}", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def records(folder: Path) -> list[dict[str, Any]]:
    """metrics.jsonl, without a torn last line (a killed write)."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        return []
    lines, result = path.read_text().splitlines(), []
    for number, line in enumerate(lines, start=1):
        try:
            result.append(json.loads(line))
        except ValueError:
            assert number == len(lines), f"{path}: line {number} of {len(lines)} is damaged"
    return result


def of_kind(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("kind") == kind]


def without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def assert_same_run(got: Path, want: Path) -> None:
    """The finished run in `got` equals the uninterrupted one in `want`: every step line, every
    epoch record and the summary (less clock figures and paths), and the final tensors."""
    a, b = records(got), records(want)
    lines = [r["kind"] for r in a if r["kind"] != "step"]
    assert lines.count("run") == 1 and lines.count("summary") == 1, lines
    steps_a, steps_b = of_kind(a, "step"), of_kind(b, "step")
    assert len(steps_a) == len(steps_b)
    for x, y in zip(steps_a, steps_b):
        assert x == y, f"first differing step line:\n got  {x}\n want {y}"
    assert without_timing(of_kind(a, "epoch")) == without_timing(of_kind(b, "epoch"))
    assert without_timing(of_kind(a, "summary")) == without_timing(of_kind(b, "summary"))
    for name in (LAST, BEST):
        x, y = load_checkpoint(got / name), load_checkpoint(want / name)
        for part in ("params", "optimizer"):
            left, right = getattr(x, part), getattr(y, part)
            assert sorted(left) == sorted(right), (name, part)
            for key in left:
                np.testing.assert_array_equal(left[key], right[key], err_msg=f"{name} {part} {key}")


class Tail:
    """The complete lines appended to a growing metrics.jsonl, read incrementally."""

    def __init__(self, path: Path):
        self.path, self.offset, self.rest, self.rows = path, 0, b"", []

    def poll(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return self.rows
        self.offset += len(data)
        *lines, self.rest = (self.rest + data).split(b"\n")
        self.rows += [json.loads(line) for line in lines if line.strip()]
        return self.rows


def wait_until(process: subprocess.Popen, condition: Callable[[], bool], what: str, timeout: float = 600,
               interval: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the run ended ({process.returncode}) before {what}:\n{stderr_of(process)[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"no {what} within {timeout} s")
        time.sleep(interval)


def resume_command(task: str, out: Path) -> str:
    return f"continue with: python -m tasks.{task} --out {shlex.quote(str(out))} --resume"


# ---------------------------------------------------------------------------------------------
# 1. SIGINT / SIGTERM in the middle of an epoch, then --resume

QUIET = ["--no-progress", "--log-every", "1"]
CHAR_LM = ["--epochs", "3", "--max-tokens", "5500", "--batch-size", "4", "--num-steps", "5", "--hidden-size", "8",
           "--num-preds", "5", "--eval-every", "1", "--checkpoint-every", "1", *QUIET]  # ~270 steps per epoch
ADAM_STEP = ["--optimizer", "adam", "--lr", "0.01", "--schedule", "step", "--lr-decay-every", "1"]
MNIST = ["--data-dir", str(SHARED_MNIST), "--limit-train", "512", "--limit-test", "128", "--hidden-size", "16",
         "--batch-size", "4", "--epochs", "3", "--eval-every", "3", *ADAM_STEP, *QUIET]  # 128 steps per epoch

SIGNAL_CASES = {
    "char_lm-sequential-sgd": ("char_lm", [*CHAR_LM, "--sampler", "sequential"], signal.SIGINT),
    "char_lm-random-adam-step": ("char_lm", [*CHAR_LM, "--sampler", "random", *ADAM_STEP], signal.SIGINT),
    "mnist_rows-adam-step": ("mnist_rows", MNIST, signal.SIGTERM),
}


def interrupt_in_epoch_two(task: str, args: list[str], tmp_path: Path, signum: int):
    """Start `task` twice, the reference in the background (deterministic on the CPU, whatever the
    timing), and send `signum` to the other a tenth into epoch 2 (the steps of epoch 1 give the
    epoch's length), leaving most of the epoch for the time the run takes to notice it.
    Returns (reference folder, run folder, reference process, signalled process, steps per epoch)."""
    reference, out = tmp_path / "reference", tmp_path / "run"
    uninterrupted = start(task, [*args, "--out", str(reference)], tmp_path / "logs")
    interrupted = start(task, [*args, "--out", str(out)], tmp_path / "logs")
    tail = Tail(out / "metrics.jsonl")
    wait_until(interrupted, lambda: bool(of_kind(tail.poll(), "epoch")), "the first epoch record")
    per_epoch = max(r["step"] for r in of_kind(tail.rows, "step") if r["epoch"] == 1)
    target = per_epoch + max(2, per_epoch // 10)
    wait_until(interrupted, lambda: any(r.get("global_step", 0) >= target for r in tail.poll()[-5:]),
               f"step {target}")
    interrupted.send_signal(signum)
    return reference, out, uninterrupted, interrupted, per_epoch


@pytest.mark.slow
@pytest.mark.parametrize("case", list(SIGNAL_CASES))
def test_signal_then_resume_equals_uninterrupted_run(tmp_path: Path, backend_name: str, case: str) -> None:
    task, args, signum = SIGNAL_CASES[case]
    if task == "mnist_rows" and not SHARED_MNIST.is_dir():
        pytest.skip(f"no MNIST files in {SHARED_MNIST}")
    reference, out, uninterrupted, interrupted, per_epoch = interrupt_in_epoch_two(
        task, ["--backend", backend_name, *args], tmp_path, signum)
    code = interrupted.wait(timeout=600)
    err = stderr_of(interrupted)
    assert code == 128 + signum, f"exit {code}:\n{err[-3000:]}"
    assert resume_command(task, out) in err and "Traceback" not in err, err
    stop = of_kind(records(out), "interrupted")
    assert len(stop) == 1 and stop[0]["signal"] == signum.name, stop
    # in the middle of epoch 2, so the resume restarts inside an epoch (Generator, stats, carried state)
    assert stop[0]["epoch"] == 2 and 0 < stop[0]["step"] < per_epoch, (stop, per_epoch)
    assert load_checkpoint(out / LAST).position["steps_done"] == stop[0]["step"]

    finish(start(task, ["--out", str(out), "--resume"], tmp_path / "logs"))
    finish(uninterrupted)
    assert_same_run(out, reference)
    kinds = [r["kind"] for r in records(out) if r["kind"] != "step"]
    assert kinds.count("interrupted") == 1, kinds
    print(f"\n{case} {backend_name}: {signum.name} at epoch 2, step {stop[0]['step']} of {per_epoch}; "
          f"resumed run equals the uninterrupted one ({len(of_kind(records(out), 'step'))} steps)")


# ---------------------------------------------------------------------------------------------
# 2. SIGKILL at random moments, checkpoint writes included

KILLS_PER_BACKEND = 15
# Tiny epochs (4 steps) with a checkpoint after each and no evaluation until the last: about a
# third of the training time goes to writing model.safetensors, so some kills land inside a write.
KILL_ARGS = ["--max-tokens", "300", "--batch-size", "16", "--num-steps", "5", "--hidden-size", "8",
             "--num-preds", "5", "--sampler", "sequential", "--optimizer", "adam", "--lr", "0.01",
             "--schedule", "step", "--lr-decay", "0.5", "--lr-decay-every", "30", "--eval-every", "1000",
             "--checkpoint-every", "1", *QUIET]
KILL_EPOCHS = {"torch": 300, "mxnet": 120}  # about 1.5 s of training each (unloaded)
PARALLEL = 2  # run folders driven at once (kills are random anyway; this halves the test's time)


def times_resumed(folder: Path) -> int:
    """How many resumes got as far as recording themselves in config.json (after the stale temp
    files are removed, which happens once the lock is held)."""
    try:
        return len(json.loads((folder / "config.json").read_text())["resumed"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


class KilledRun:
    """One run folder, started and resumed until it finishes; its processes may be SIGKILLed.

    A kill comes `delay` seconds after the start (mode 'start': anywhere, start-up, resume,
    training, the final evaluation), or `delay` seconds after the process wrote its first
    checkpoint (mode 'training': steps and checkpoint writes), or at the first checkpoint write
    seen after that (mode 'write': aimed at a write, the moment a kill hurts most)."""

    def __init__(self, out: Path, args: list[str], logs: Path):
        self.out, self.args, self.logs = out, args, logs
        self.process: Optional[subprocess.Popen] = None
        self.delay: Optional[float] = None
        self.kill_at: Optional[float] = None
        self.mode = "start"
        self.armed = False  # mode 'write': the delay is over, kill when a temp file shows
        self.aimed = False  # the last kill was aimed at a write
        self.last_inode: Optional[int] = None  # of model.safetensors at the start, for training kills
        self.pending: set[str] = set()  # stale temp files the next resume must remove
        self.resumed_before = 0

    def launch(self, delay: Optional[float], mode: str = "start") -> None:
        fresh = not (self.out / "config.json").is_file()  # killed before config.json: start it again
        command = [*self.args, "--out", str(self.out)] if fresh else ["--out", str(self.out), "--resume"]
        self.resumed_before = times_resumed(self.out)
        self.mode, self.armed = mode, False
        self.last_inode = self._inode()
        self.process = start("char_lm", command, self.logs)
        self.delay = delay
        self.kill_at = None if delay is None or mode != "start" else time.monotonic() + delay

    def remaining(self) -> float:
        """The share of the training still to do, by the last checkpoint."""
        if not (self.out / LAST).is_file():
            return 1.0
        checkpoint = load_checkpoint(self.out / LAST)
        return 1.0 - checkpoint.position.get("epochs_done", 0) / checkpoint.train_spec.num_epochs

    def _inode(self) -> int:
        try:
            return (self.out / LAST).stat().st_ino  # each write renames a new file over it
        except FileNotFoundError:
            return -1

    @property
    def kill_planned(self) -> bool:
        return self.process is not None and self.delay is not None

    def check(self) -> Optional[str]:
        """None while the process runs; else 'finished' or how it was killed: 'killed', 'killed
        inside a write', 'killed after the last checkpoint' (before the summary line) or 'complete'
        (after the summary line, on the way out: the run is whole)."""
        code = self.process.poll()
        if (code is None and self.mode != "start" and self.delay is not None and self.kill_at is None
                and not self.armed and self._inode() != self.last_inode):
            self.kill_at = time.monotonic() + self.delay  # modes 'training', 'write': the first checkpoint is written
        if code is None and self.mode == "write" and self.kill_at is not None and time.monotonic() >= self.kill_at:
            self.armed, self.kill_at = True, None
        if code is None and (self.armed and any(self.out.glob(STALE))
                             or self.kill_at is not None and time.monotonic() >= self.kill_at):
            self.process.send_signal(signal.SIGKILL)
            code = self.process.wait()
            assert code == -signal.SIGKILL, code
        if code is None:
            return None
        if code != 0:
            assert code == -signal.SIGKILL, f"{self.process.args} exited {code}:\n{stderr_of(self.process)[-3000:]}"
        if self.pending and times_resumed(self.out) > self.resumed_before:  # this resume held the lock
            assert not any((self.out / name).exists() for name in self.pending), f"stale files kept: {self.pending}"
            self.pending.clear()
        self.process = None
        if code == 0:
            return "finished"
        self.aimed = self.mode == "write"
        stale = {p.name for p in self.out.glob(STALE)}
        self.pending |= stale
        last = load_checkpoint(self.out / LAST) if (self.out / LAST).exists() else None  # never half a one
        if (self.out / BEST).exists():
            load_checkpoint(self.out / BEST)
        if of_kind(records(self.out), "summary"):
            done = run_task("char_lm", ["--out", str(self.out), "--resume"])  # refused, but it removes
            assert done.returncode == 2 and "already trained" in done.stderr, done.stderr  # stale files
            return "complete"
        if stale:
            return "killed inside a write"
        if last is not None and last.position["epochs_done"] == last.train_spec.num_epochs:
            return "killed after the last checkpoint"  # the resume only writes the summary
        return "killed"


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path: Path, backend_name: str) -> None:
    args = ["--backend", backend_name, "--epochs", str(KILL_EPOCHS[backend_name]), *KILL_ARGS]
    logs, reference = tmp_path / "logs", tmp_path / "reference"
    began = time.monotonic()
    finish(start("char_lm", [*args, "--out", str(reference)], logs))
    full = time.monotonic() - began  # start-up and training: kills fall in [1 s, full] after a start
    training = of_kind(records(reference), "epoch")[-1]["elapsed_s"]  # or in [0, training] after a checkpoint
    rng = random.Random(f"sigkill-{backend_name}")
    outcomes = ("killed", "killed inside a write", "killed after the last checkpoint", "complete")
    counts = dict.fromkeys([*outcomes, "finished"], 0)
    aimed = dict.fromkeys(outcomes, 0)  # the kills aimed at a write
    runs: list[KilledRun] = []
    active: list[KilledRun] = []
    deadline = time.monotonic() + 600
    while True:
        kills = sum(counts[outcome] for outcome in outcomes)
        planned = sum(run.kill_planned for run in active)
        while len(active) < PARALLEL and kills + planned < KILLS_PER_BACKEND:  # a new folder
            runs.append(KilledRun(tmp_path / f"run{len(runs)}", args, logs))
            active.append(runs[-1])
        if not active:
            break
        for run in active:
            if run.process is None:  # (re)start it, with a kill while more kills are wanted
                if kills + planned >= KILLS_PER_BACKEND:
                    run.launch(None)
                else:  # (start-up takes about half of `full`: most kills wait for training)
                    mode = rng.choices(["start", "training", "write"], [3, 4, 3])[0]
                    run.launch(rng.uniform(1.0, full) if mode == "start" else
                               rng.uniform(0.0, training * run.remaining()), mode)
                planned += run.kill_planned
        for run in list(active):
            outcome = run.check()
            if outcome is not None:
                counts[outcome] += 1
                if outcome != "finished" and run.aimed:
                    aimed[outcome] += 1
                if outcome in ("finished", "complete"):
                    active.remove(run)
                    assert not list(run.out.glob(".*.tmp")), list(run.out.glob(".*.tmp"))
                    assert_same_run(run.out, reference)
        assert time.monotonic() < deadline, counts
        time.sleep(0.002)
    kills = sum(counts[outcome] for outcome in outcomes)
    inside, aimed_inside = counts["killed inside a write"], aimed["killed inside a write"]
    message = (f"{backend_name}: {kills} SIGKILLs over {len(runs)} runs, {inside} inside a checkpoint write "
               f"(a stale {STALE} left, removed by the next resume; {aimed_inside} of the {sum(aimed.values())} "
               f"aimed at a write, {inside - aimed_inside} of the {kills - sum(aimed.values())} at random moments), "
               f"{counts['killed after the last checkpoint']} between the last checkpoint and the summary line, "
               f"{counts['complete']} after the summary line; {counts['finished']} processes finished (unkilled, "
               f"or before their kill); every finished run equals the uninterrupted one ({full:.1f} s for it, "
               f"{training:.1f} s training)")
    print("\n" + message)
    assert kills >= KILLS_PER_BACKEND, message


# ---------------------------------------------------------------------------------------------
# 3.-5. A closed stdout, stale temp files, the lock

TINY = ["--max-tokens", "600", "--batch-size", "4", "--num-steps", "5", "--hidden-size", "8",
        "--num-preds", "5", "--eval-every", "1", "--no-progress"]


@pytest.mark.slow
def test_closed_stdout_does_not_stop_the_run(tmp_path: Path, backend_name: str) -> None:
    out = tmp_path / "run"
    command = " ".join(shlex.quote(part) for part in (
        sys.executable, "-m", "tasks.char_lm", "--backend", backend_name, "--epochs", "3", *TINY, "--out", str(out)))
    # head exits after the first epoch's line; the run writes two more, its summary and the
    # samples into nothing (and exits 0: the status is python's, not head's)
    done = subprocess.run(["bash", "-c", f"set +o pipefail; {command} | head -1; exit ${{PIPESTATUS[0]}}"],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("epoch 1:") and done.stdout.count("\n") == 1, done.stdout
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert load_checkpoint(out / LAST).provenance["epoch"] == 3
    rows = records(out)
    assert len(of_kind(rows, "summary")) == 1 and of_kind(rows, "summary")[0]["epochs"] == 3


@pytest.mark.slow
def test_stale_temp_files_and_a_kill_before_the_summary(tmp_path: Path) -> None:
    """A `.model.safetensors.abc.tmp` (a write cut off by a kill) is removed by --resume and by
    --overwrite. And a run killed after its last checkpoint but before its summary line (the last
    plots run in between) is finished by --resume, while a finished run is still refused."""
    require_backend("torch")
    out = tmp_path / "run"
    args = ["--backend", "torch", "--epochs", "1", *TINY, "--out", str(out)]
    assert run_task("char_lm", args).returncode == 0
    stale = out / ".model.safetensors.abc.tmp"
    stale.write_bytes(b"half a checkpoint")
    done = run_task("char_lm", ["--out", str(out), "--resume", "--epochs", "2"])
    assert done.returncode == 0, done.stderr
    assert not stale.exists() and load_checkpoint(out / LAST).provenance["epoch"] == 2

    whole = records(out)
    assert [r["kind"] for r in whole[-2:]] == ["epoch", "summary"]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in whole[:-1]))  # as the kill left it
    done = run_task("char_lm", ["--out", str(out), "--resume"])
    assert done.returncode == 0, done.stderr  # (it used to be refused: 'already trained 2 epochs')
    assert without_timing(records(out)) == without_timing(whole)
    done = run_task("char_lm", ["--out", str(out), "--resume"])
    assert done.returncode == 2 and "already trained 2 epochs" in done.stderr, done.stderr

    stale.write_bytes(b"half a checkpoint")
    done = run_task("char_lm", [*args, "--overwrite"])
    assert done.returncode == 0, done.stderr
    assert not stale.exists() and load_checkpoint(out / LAST).provenance["epoch"] == 1
    assert not list(out.glob(".*.tmp"))


def test_a_kill_after_the_early_stop_checkpoint_trains_no_further_epoch(tmp_path: Path) -> None:
    """On the run layer's NumPy stand-in (tests.test_run_layer): the checkpoint of an early stop is
    written before its early_stop and summary lines; a kill in between used to make the resume
    train another epoch (and stop again), so the run differed from an unkilled one."""
    from seqcore.run.folder import Mode
    from tests.test_run_layer import FakeJob, fit

    def job() -> FakeJob:
        return FakeJob(scores=lambda epoch: [0.5, 0.4, 0.6, 0.6, 0.6, 0.6][epoch - 1])  # best at epoch 2

    fit(tmp_path / "whole", epochs=6, job=job(), patience=2, log_every=1)
    out = tmp_path / "run"
    fit(out, epochs=6, job=job(), patience=2, log_every=1)
    kept = load_checkpoint(out / LAST).position["num_records"]
    lines = (out / "metrics.jsonl").read_text().splitlines(keepends=True)
    assert [json.loads(line)["kind"] for line in lines[kept:]] == ["early_stop", "summary"]
    (out / "metrics.jsonl").write_text("".join(lines[:kept]))  # as the kill left it
    summary, _ = fit(out, epochs=6, job=job(), patience=2, log_every=1, mode=Mode.RESUME)
    assert summary["epochs"] == 4
    assert without_timing(records(out)) == without_timing(records(tmp_path / "whole"))


@pytest.mark.slow
def test_lock_refuses_a_second_run_and_dies_with_its_holder(tmp_path: Path) -> None:
    require_backend("torch")
    out, logs = tmp_path / "run", tmp_path / "logs"
    args = ["--backend", "torch", *TINY, "--max-tokens", "3000", "--eval-every", "1000", "--log-every", "1",
            "--out", str(out)]  # ~135 steps per epoch, evaluated at the end only
    first = start("char_lm", [*args, "--epochs", "12"], logs)
    tail = Tail(out / "metrics.jsonl")
    wait_until(first, lambda: bool(of_kind(tail.poll(), "step")), "a step line")
    seconds = [subprocess.Popen([sys.executable, "-m", "tasks.char_lm", *second], cwd=ROOT, env=_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for second in ([*args, "--epochs", "12"], ["--out", str(out), "--resume", "--epochs", "13"])]
    for second in seconds:
        out_text, err_text = second.communicate(timeout=600)
        assert_one_sentence(subprocess.CompletedProcess(second.args, second.returncode, out_text, err_text),
                            "Another run is writing to")
    assert first.poll() is None, "the first run ended before the second ones were refused; make it longer"
    finish(first)
    assert len(of_kind(records(out), "summary")) == 1

    # A SIGKILLed holder: the kernel drops its flock, so the next --resume gets the folder.
    killed = start("char_lm", ["--out", str(out), "--resume", "--epochs", "14"], logs)
    # (whole-file reads: the resume replaces metrics.jsonl, which a Tail would not follow)
    wait_until(killed, lambda: any(r["epoch"] > 12 for r in of_kind(records(out), "step")),
               "a step line of epoch 13", interval=0.01)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=300) == -signal.SIGKILL
    done = run_task("char_lm", ["--out", str(out), "--resume"])
    assert done.returncode == 0, done.stderr
    assert of_kind(records(out), "summary")[-1]["epochs"] == 14
