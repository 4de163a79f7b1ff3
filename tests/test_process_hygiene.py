"""Process hygiene: a command that starts processes leaves none of them behind and loses no finished
result, whatever stops it and whenever.

Each multi-process command (compare, benchmark, benchmark --workers, tasks.launch, torchrun) runs
with a marker in its environment that every process it starts inherits. It is stopped at a random
moment by SIGINT to its process group (a terminal's Ctrl-C), SIGTERM to it alone (`kill`), and
SIGKILL to it alone (`kill -9`: its children must die by their death signal); after each stop /proc
must soon hold no process carrying the marker, and the same command (with --resume where it wants
one) is started again. After the three stops it runs to the end: everything that had finished before
a stop is still there, untouched. The moments come from a seeded generator; the seed is in every
failure message (SEQCORE_HYGIENE_SEED=N repeats a run). Tiny sizes; each chain takes seconds of work.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Callable, Optional

import pytest

from seqcore.run.log import read_metrics
from tests.conftest import ROOT, require_backend

MARK_ENV = "SEQCORE_HYGIENE_MARK"
SEED = int(os.environ.get("SEQCORE_HYGIENE_SEED", time.time_ns() % 2**31))
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
COMMAND_LIMIT_S = 600.0  # a stopped or finishing command ends within this (far above its seconds of work)
GONE_LIMIT_S = 300.0  # after the command ends, its processes are gone within this (a run may be checkpointing)
UP_LIMIT_S = 300.0  # the command starts its first child within this
POLL_S = 0.1
LM = ["-m", "tasks.char_lm", "--hidden-size", "8", "--max-tokens", "600", "--batch-size", "4", "--num-steps", "5",
      "--eval-every", "1", "--checkpoint-every", "1", "--log-every", "1", "--no-progress", "--device", "cpu",
      "--num-preds", "3", "--epochs", "30"]


def environment(mark: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", MARK_ENV: mark}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "DMLC_ROLE", "TORCHELASTIC_RUN_ID"):
        env.pop(name, None)
    return env


def marked(mark: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose environment carries the marker."""
    needle = f"{MARK_ENV}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie: dead, waiting for its parent to read its status
            found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]))
        except (OSError, IndexError):
            continue
    return found


def children_of(pid: int, mark: str) -> list[int]:
    result = []
    for child, _ in marked(mark):
        try:
            if int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                result.append(child)
        except (OSError, IndexError, ValueError):
            continue
    return result


def wait_gone(mark: str, context: str) -> None:
    deadline = time.monotonic() + GONE_LIMIT_S
    while marked(mark) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    left = marked(mark)
    assert not left, f"{context}: processes left alive {GONE_LIMIT_S:.0f} s after the command ended: {left}"


class Chain:
    """One command stopped by each signal in turn, then run to the end."""

    def __init__(self, name: str, tmp_path: Path, expected_s: float, ours: bool = True):
        """ours=False: a launcher that is not seqcore's (torchrun), whose exit status and output
        (a traceback when a signal stops it) are its own."""
        self.name, self.tmp, self.expected_s = name, tmp_path, expected_s
        self.mark = uuid.uuid4().hex
        self.rng = random.Random(f"{SEED}-{name}")
        self.ours = ours
        self.logs: list[str] = []

    def context(self, what: str) -> str:
        return f"{self.name}, {what} (SEQCORE_HYGIENE_SEED={SEED})"

    def start(self, args: list[str], number: int) -> tuple[subprocess.Popen, Path]:
        log = self.tmp / f"{self.name}-{number}.log"
        handle = log.open("w")
        process = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=environment(self.mark), stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        handle.close()
        return process, log

    def stop_at_random(self, args: list[str], signum: int, number: int) -> tuple[int, str, float]:
        """Start, stop by `signum` at a random moment; returns (exit status, output, moment)."""
        process, log = self.start(args, number)
        moment = self.rng.uniform(0.0, self.expected_s)
        if signum != signal.SIGKILL:  # the command handles these once it owns a child (before: Python's own)
            deadline = time.monotonic() + UP_LIMIT_S
            while not children_of(process.pid, self.mark) and process.poll() is None:
                assert time.monotonic() < deadline, self.context("no child started")
                time.sleep(POLL_S)
        deadline = time.monotonic() + moment
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL_S / 2)
        if process.poll() is None:
            if signum == signal.SIGINT:
                os.killpg(process.pid, signum)
            else:
                process.send_signal(signum)
        code = process.wait(timeout=COMMAND_LIMIT_S)
        what = f"{signal.Signals(signum).name} after {moment:.2f} s"
        wait_gone(self.mark, self.context(what))
        text = log.read_text(errors="replace")
        self.logs.append(text)
        if self.ours:
            assert "Traceback" not in text, self.context(f"{what}: a traceback\n{text[-3000:]}")
        return code, text, moment

    def finish(self, args: list[str]) -> str:
        process, log = self.start(args, 99)
        code = process.wait(timeout=COMMAND_LIMIT_S)
        wait_gone(self.mark, self.context("the last run"))
        text = log.read_text(errors="replace")
        assert code == 0, self.context(f"the last run ended with {code}\n{text[-3000:]}")
        return text

    def run(self, first: list[str], again: Callable[[], Optional[list[str]]],
            between: Callable[[int, str], None] = lambda code, text: None) -> str:
        """`first`, then `again()` (None: the work is complete, nothing left to stop) after each stop."""
        args: Optional[list[str]] = first
        for number, signum in enumerate(SIGNALS):
            if args is None:
                break
            code, text, moment = self.stop_at_random(args, signum, number)
            if self.ours and code != 0 and signum != signal.SIGKILL:  # not finished before the moment
                # Stopped by its owner with a sentence; or, in the last instants after its owner had
                # let go (its results written), ended as Python ends on the signal (exit 130 with
                # run_main's sentence, or killed by SIGTERM): the chain's last checks see that nothing
                # was lost.
                stopped = code == 128 + signum and "stopped: " in text
                late = code == -signum or (code == 130 and "error: interrupted at once" in text)
                assert stopped or late, self.context(
                    f"{signal.Signals(signum).name} at {moment:.2f} s: exit {code}\n{text[-3000:]}")
            between(code, text)
            args = again()
        return self.finish(args if args is not None else first) if args is not None else ""


# -- the helper itself ---------------------------------------------------------------------------

PARENT = textwrap.dedent("""
    import signal, sys, time
    from seqcore.run.processes import Owner
    with Owner() as owner:
        child = owner.start([sys.executable, "-c", sys.argv[1]], death_signal=signal.SIGTERM,
                            on_stop=signal.SIGTERM)
        print(child.pid, flush=True)
        while not owner.stopped:
            time.sleep(0.05)
        print("code", owner.wait(child), flush=True)
""")
CHILD = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGTERM, lambda *a: (print("child stopped", flush=True), sys.exit(143)))
    print("child ready", flush=True)  # on the parent's stdout, which it inherits
    time.sleep(300)
""")


def start_parent(mark: str) -> tuple[subprocess.Popen, int]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], cwd=ROOT, env=environment(mark),
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    return parent, int(parent.stdout.readline())


def test_a_child_dies_with_its_killed_parent() -> None:
    mark = uuid.uuid4().hex
    parent, child = start_parent(mark)
    assert {pid for pid, _ in marked(mark)} == {parent.pid, child}
    parent.kill()
    parent.wait()
    wait_gone(mark, "SIGKILL of the parent")


def test_a_stop_reaches_the_child_through_its_owner_alone() -> None:
    """SIGINT to the parent's process group (Ctrl-C): the child, in a session of its own, gets it
    only as the SIGTERM its owner sends, and the owner waits for it."""
    mark = uuid.uuid4().hex
    parent, child = start_parent(mark)
    assert parent.stdout.readline() == "child ready\n"  # its handler is installed (not a sleep: a busy machine)
    os.killpg(parent.pid, signal.SIGINT)
    out, _ = parent.communicate(timeout=COMMAND_LIMIT_S)
    assert "code 143" in out and parent.returncode == 0
    wait_gone(mark, "SIGINT to the parent")


# -- the commands -------------------------------------------------------------------------------

def _finished_runs(report: Path) -> dict[Path, int]:
    found = {}
    for path in report.glob("runs/*/*/metrics.jsonl"):
        try:
            if any(r.get("kind") == "summary" for r in read_metrics(path, warn=False)):
                found[path] = path.stat().st_mtime_ns
        except Exception:
            continue
    return found


def _benchmarks(path: Path) -> dict[str, dict]:
    try:
        return {r["backend"]: r for r in json.loads(path.read_text())}
    except (OSError, ValueError):
        return {}


@pytest.mark.slow
def test_compare(tmp_path: Path) -> None:
    """The grid's runs, the cross-checks and the benchmark: finished runs are kept (not retrained),
    the benchmark's measured backends too, and the last invocation completes the report."""
    for name in ("mxnet", "torch"):
        require_backend(name)
    out = tmp_path / "report"
    args = ["-m", "tasks.compare", "--tiny", "--tasks", "hello", "--cells", "rnn", "--impls", "concise",
            "--out", str(out)]
    chain = Chain("compare", tmp_path, expected_s=12.0)
    kept: dict[Path, int] = {}
    measured: dict[str, dict] = {}

    def between(code: int, text: str) -> None:
        kept.update(_finished_runs(out))
        measured.update(_benchmarks(out / "benchmark" / "benchmark.json"))

    chain.run(args, lambda: args, between)
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 2 and all(r["status"] == "done" for r in records), chain.context(str(records))
    for path, stamp in kept.items():
        assert path.stat().st_mtime_ns == stamp, chain.context(f"{path} was trained again")
    final = _benchmarks(out / "benchmark" / "benchmark.json")
    assert set(final) == {"mxnet", "torch"}
    for backend, report in measured.items():
        assert final[backend] == report, chain.context(f"the {backend} benchmark was measured again")


@pytest.mark.slow
def test_benchmark(tmp_path: Path) -> None:
    """Each backend measured before a stop is written at once and kept by --resume."""
    for name in ("mxnet", "torch"):
        require_backend(name)
    out = tmp_path / "bench"
    args = ["-m", "tasks.benchmark", "--cells", "rnn", "--impls", "concise", "--steps", "1", "--warmup", "1",
            "--repeats", "1", "--batch-sizes", "2", "--num-steps", "3", "--hidden-size", "4", "--out", str(out)]
    chain = Chain("benchmark", tmp_path, expected_s=8.0)
    measured: dict[str, dict] = {}

    def between(code: int, text: str) -> None:
        saved = _benchmarks(out / "benchmark.json")
        for backend in ("mxnet", "torch"):
            if f"{backend}: measured in" in text:
                assert backend in saved, chain.context(f"{backend} was measured but not written\n{text}")
        measured.update(saved)

    again = lambda: args + (["--resume"] if (out / "benchmark-command.json").is_file() else [])  # noqa: E731
    chain.run(args, again, between)
    final = _benchmarks(out / "benchmark.json")
    assert set(final) == {"mxnet", "torch"} and (out / "benchmark.png").is_file()
    for backend, report in measured.items():
        assert final[backend] == report, chain.context(f"the {backend} measurement was replaced")


def _lm_chain(chain: Chain, out: Path, launcher: Callable[[], list[str]], backend: str) -> None:
    """A two-worker char LM: after each stop it resumes from its checkpoint; the last invocation
    trains to the end, every epoch once."""
    def again() -> Optional[list[str]]:
        if not (out / "config.json").is_file():
            return [*launcher(), *LM, "--backend", backend, "--out", str(out)]
        records = read_metrics(out / "metrics.jsonl", warn=False) if (out / "metrics.jsonl").is_file() else []
        if any(r.get("kind") == "summary" for r in records):
            return None  # finished before the stop: nothing left to stop
        return [*launcher(), "-m", "tasks.char_lm", "--out", str(out), "--resume"]

    chain.run(again(), again)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["epoch"] for r in records if r["kind"] == "epoch"] == list(range(1, 31)), chain.context("epochs")
    assert records[-1]["kind"] == "summary"


@pytest.mark.slow
def test_launch(tmp_path: Path) -> None:
    """tasks.launch: the scheduler, two servers and two MXNet workers."""
    require_backend("mxnet")
    _lm_chain(Chain("launch", tmp_path, expected_s=10.0), tmp_path / "lm",
              lambda: ["-m", "tasks.launch", "-n", "2", "--"], "mxnet")


@pytest.mark.slow
def test_torchrun(tmp_path: Path) -> None:
    """torchrun's two PyTorch workers (started in sessions of their own by torchrun) die with it."""
    require_backend("torch")
    from tests.test_distributed import free_port

    _lm_chain(Chain("torchrun", tmp_path, expected_s=10.0, ours=False), tmp_path / "lm",
              lambda: ["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port())],
              "torch")


@pytest.mark.slow
def test_benchmark_workers(tmp_path: Path) -> None:
    """benchmark --workers: one process, then torchrun with two workers; measured rows are kept."""
    require_backend("torch")
    out = tmp_path / "scaling"
    args = ["-m", "tasks.benchmark", "--workers", "2", "--backends", "torch", "--epochs", "2", "--max-tokens", "600",
            "--batch-sizes", "4", "--num-steps", "5", "--hidden-size", "8", "--out", str(out)]
    chain = Chain("benchmark-workers", tmp_path, expected_s=15.0)
    kept: dict[int, dict] = {}

    def rows() -> dict[int, dict]:
        try:
            return {r["workers"]: r for r in json.loads((out / "scaling.json").read_text())}
        except (OSError, ValueError):
            return {}

    again = lambda: args + (["--resume"] if (out / "benchmark-command.json").is_file() else [])  # noqa: E731
    chain.run(args, again, lambda code, text: kept.update(rows()))
    final = rows()
    assert set(final) == {1, 2}, chain.context(str(final))
    for workers, row in kept.items():
        assert final[workers]["tokens_per_s"] == row["tokens_per_s"], chain.context(f"{workers} measured again")
