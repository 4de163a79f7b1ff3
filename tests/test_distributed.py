"""Data-parallel training (seqcore.parallel.distributed): two workers equal one process, on each framework's
own engine (torchrun + DistributedDataParallel over gloo; tasks.launch + MXNet's dist_sync KVStore),
and the two frameworks' two-worker runs equal each other; a killed worker ends the run with one
sentence and the last checkpoint resumes it on one or two workers; bad launches end in one sentence.

CPU and loopback only, tiny models; every framework runs in its own processes.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seqcore.backend import Backend
from seqcore.errors import SeqcoreError
from seqcore.parallel.data_parallel import DistributedBackend, _rows_of, row_blocks
from seqcore.parallel.distributed import World, check_environment, check_rows, environment_size
from seqcore.run.log import read_metrics
from tests.conftest import ROOT, assert_one_sentence, require_backend
from tests.inprocess import refuses
from tests.test_mnist_loader import SHARED_MNIST

# One process against two: the same sums in another order (two half-batch means, then their
# weighted sum), so losses agree to float32 rounding; measured below 3e-7 relative over 50 steps.
STEP_RTOL = 1e-5
FINAL_RTOL = 1e-4  # perplexity / test loss after the whole (short) run
CROSS_RTOL = 1e-4  # MXNet against PyTorch, two workers each, first steps (measured ~1e-6)
# A killed worker ends the run when its peers see it gone, not after the collective timeout, which the
# killing test sets far above this (on a busy 2-core machine a checkpointing run took seconds).
KILL_LIMIT_S = 240.0
KILL_DIST_TIMEOUT_S = "900"
HANG_S = 600  # a subprocess that should refuse or finish: far above its seconds of work

LM = ["-m", "tasks.char_lm", "--hidden-size", "16", "--max-tokens", "2000", "--batch-size", "8",
      "--num-steps", "10", "--eval-every", "1", "--no-progress", "--log-every", "1", "--device", "cpu",
      "--num-preds", "5"]
CASES = {
    "sequential": [*LM, "--epochs", "2", "--cell", "lstm"],  # each worker carries (h, c) of its rows
    # a short last batch (3 rows: 1 + 2), dropout masks drawn for the whole batch, cut by rows, and
    # the scratch model (on MXNet: its hybridized steps, one cached graph per row count)
    "random": [*LM, "--epochs", "1", "--sampler", "random", "--cell", "gru", "--num-layers", "2",
               "--dropout", "0.3", "--impl", "scratch"],
    "mnist": ["-m", "tasks.mnist_rows", "--data-dir", str(SHARED_MNIST), "--device", "cpu", "--no-progress",
              "--limit-train", "200", "--limit-test", "100", "--hidden-size", "16", "--batch-size", "32",
              "--epochs", "1", "--log-every", "1"],  # last batch 8 rows
}


def environment(**extra: str) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "DMLC_ROLE"):
        if name not in extra:
            env.pop(name, None)
    return env


def command(backend: str, workers: int, args: list[str]) -> list[str]:
    """One process, or `workers` through the framework's own launcher."""
    if workers == 1:
        return [sys.executable, *args, "--backend", backend]
    if backend == "torch":
        return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(workers),
                "--master-port", str(free_port()), *args, "--backend", backend]
    return [sys.executable, "-m", "tasks.launch", "-n", str(workers), "--", *args, "--backend", backend]


def train(backend: str, workers: int, args: list[str], out: Path, timeout: float = 300,
          **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(command(backend, workers, [*args, "--out", str(out)]), cwd=ROOT, capture_output=True,
                            text=True, timeout=timeout, env=environment(**env))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def steps(out: Path) -> np.ndarray:
    return np.array([r["loss"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "step"])


def summary(out: Path) -> dict:
    return [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "summary"][-1]


# -- neutral -------------------------------------------------------------------------------------

def test_rows_split_into_contiguous_blocks() -> None:
    assert row_blocks(8, 2) == [(0, 4), (4, 8)]
    assert row_blocks(3, 2) == [(0, 1), (1, 3)]  # a short last batch
    assert row_blocks(1, 2) == [(0, 0), (0, 1)]  # fewer rows than workers: one empty block
    masks = [np.arange(2 * 4 * 3).reshape(2, 4, 3), np.arange(4 * 5).reshape(4, 5)]  # (T, N, .), (N, .)
    mine = _rows_of(masks, slice(2, 4))
    assert np.array_equal(mine[0], masks[0][:, 2:4]) and np.array_equal(mine[1], masks[1][2:4])


def test_the_worker_backend_has_every_method_of_the_protocol() -> None:
    import inspect

    for name, method in inspect.getmembers(Backend, inspect.isfunction):
        if name.startswith("_"):
            continue
        mine = getattr(DistributedBackend, name, None)
        assert mine is not None, name
        wanted = list(inspect.signature(method).parameters)
        assert list(inspect.signature(mine).parameters)[:len(wanted)] == wanted, name


@pytest.mark.parametrize("batch_size, size, fragment", [
    (3, 2, "The batch of 3 rows does not divide evenly among 2 workers"),
    (2, 4, "4 workers are more than the batch's 2 rows"),
])
def test_batches_that_do_not_split_are_refused(batch_size: int, size: int, fragment: str) -> None:
    with pytest.raises(SeqcoreError, match=fragment):
        check_rows(batch_size, size)
    check_rows(8, 2)


def test_launch_environments() -> None:
    assert environment_size({}) == 1 and World().is_writer
    assert environment_size({"WORLD_SIZE": "4", "RANK": "1"}) == 4
    assert environment_size({"DMLC_ROLE": "worker", "DMLC_NUM_WORKER": "3"}) == 3
    with pytest.raises(SeqcoreError, match="MASTER_ADDR is not"):
        check_environment("torch", {"WORLD_SIZE": "2", "RANK": "0", "MASTER_PORT": "1"})
    with pytest.raises(SeqcoreError, match="DMLC_PS_ROOT_URI is not: the scheduler's address is missing"):
        check_environment("mxnet", {"DMLC_ROLE": "worker", "DMLC_NUM_WORKER": "2"})
    with pytest.raises(SeqcoreError, match="torchrun launches the torch backend only"):
        check_environment("mxnet", {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "a", "MASTER_PORT": "1"})


# -- two workers against one process -------------------------------------------------------------

_RUNS: dict[tuple[str, str, int], Path] = {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    """The run folder of (backend, case, workers), trained once per module."""
    def get(backend: str, case: str, workers: int) -> Path:
        key = (backend, case, workers)
        if key not in _RUNS:
            require_backend(backend)
            if case == "mnist" and not SHARED_MNIST.is_dir():
                pytest.skip(f"no MNIST files at {SHARED_MNIST}")
            out = tmp_path_factory.mktemp(f"{backend}-{case}-{workers}")
            train(backend, workers, CASES[case], out / "run")
            _RUNS[key] = out / "run"
        return _RUNS[key]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_two_workers_equal_one_process(runs, backend_name: str, case: str) -> None:
    one, two = runs(backend_name, case, 1), runs(backend_name, case, 2)
    np.testing.assert_allclose(steps(two), steps(one), rtol=STEP_RTOL)
    assert len(steps(two)) == len(steps(one)) > 5
    first, second = summary(one), summary(two)
    for key in ("val_ppl", "train_ppl") if case != "mnist" else ("test_loss",):
        assert second[key] == pytest.approx(first[key], rel=FINAL_RTOL), key
    if case == "mnist":
        assert abs(second["test_accuracy"] - first["test_accuracy"]) <= 0.01
    records = read_metrics(two / "metrics.jsonl")
    assert records[0]["kind"] == "run" and records[0]["world_size"] == 2
    assert len([r for r in records if r["kind"] == "summary"]) == 1  # rank 0 alone wrote


@pytest.mark.slow
def test_the_frameworks_two_worker_runs_agree(runs) -> None:
    require_backend("mxnet")
    require_backend("torch")
    for case in ("sequential", "mnist"):
        if case == "mnist" and not SHARED_MNIST.is_dir():
            continue
        mxnet, torch = steps(runs("mxnet", case, 2)), steps(runs("torch", case, 2))
        np.testing.assert_allclose(mxnet[:10], torch[:10], rtol=CROSS_RTOL, err_msg=case)


# -- a worker dies -------------------------------------------------------------------------------

def workers_of(launcher: int) -> list[int]:
    """The worker processes below `launcher` (its children and theirs), by their command line."""
    found, todo = [], [launcher]
    while todo:
        pid = todo.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            try:
                line = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "tasks.char_lm" in line and "torch.distributed.run" not in line and "tasks.launch" not in line:
                found.append(child)
            todo.append(child)
    return found


@pytest.mark.slow
def test_a_killed_worker_stops_the_run_and_the_checkpoint_resumes(backend_name: str, tmp_path: Path) -> None:
    """Killed on two workers, resumed on one (torch) or two (mxnet): the resumed steps equal an
    uninterrupted one-process run's."""
    resume_workers = 1 if backend_name == "torch" else 2
    out = tmp_path / "run"
    args = [*LM, "--checkpoint-every", "1"]
    started = subprocess.Popen(command(backend_name, 2, [*args, "--epochs", "200", "--out", str(out)]), cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=environment(SEQCORE_DIST_TIMEOUT_S=KILL_DIST_TIMEOUT_S))
    try:
        deadline = time.monotonic() + HANG_S
        while not (out / "model.safetensors").is_file():
            assert started.poll() is None and time.monotonic() < deadline, started.communicate()[1][-3000:]
            time.sleep(0.1)
        victims = workers_of(started.pid)
        assert len(victims) == 2, victims
        os.kill(victims[-1], signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = started.communicate(timeout=KILL_LIMIT_S)
    finally:
        if started.poll() is None:
            started.kill()
    assert time.monotonic() - killed < KILL_LIMIT_S
    assert started.returncode != 0
    if backend_name == "mxnet":  # tasks.launch: one sentence naming the worker
        lines = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and "was killed by SIGKILL" in lines[0] and "resumes" in lines[0], stderr
    else:  # torchrun's own report names the failed rank and its signal
        assert "SIGKILL" in stderr or "Signal 9" in stderr, stderr[-2000:]
    done = max(r["epoch"] for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "epoch")
    train(backend_name, resume_workers, ["-m", "tasks.char_lm", "--resume", "--epochs", str(done + 2)], out)
    records = read_metrics(out / "metrics.jsonl")
    assert [r["epoch"] for r in records if r["kind"] == "epoch"][-2:] == [done + 1, done + 2]
    assert records[-1]["kind"] == "summary"
    train(backend_name, 1, [*args, "--epochs", str(done + 2)], tmp_path / "whole")
    resumed = {r["global_step"]: r["loss"] for r in records if r["kind"] == "step"}
    whole = {r["global_step"]: r["loss"] for r in read_metrics(tmp_path / "whole" / "metrics.jsonl")
             if r["kind"] == "step"}
    assert sorted(resumed) == sorted(whole)
    np.testing.assert_allclose([resumed[k] for k in sorted(whole)], [whole[k] for k in sorted(whole)], rtol=STEP_RTOL)


@pytest.mark.slow
def test_a_stop_inside_an_epoch_keeps_every_rows_state_and_resumes_on_another_count(runs, backend_name: str,
                                                                                     tmp_path: Path) -> None:
    """SIGTERM to the launcher: both workers stop after the same step, the checkpoint holds the
    carried state of all 8 rows, and the run resumed on the other number of workers equals one
    uninterrupted process (the `sequential` case, an LSTM)."""
    from seqcore.run.checkpoint import load_checkpoint

    out, args = tmp_path / "run", [*LM, "--cell", "lstm"]
    started = subprocess.Popen(command(backend_name, 2, [*args, "--epochs", "200", "--out", str(out)]), cwd=ROOT,
                               text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment())
    try:
        deadline = time.monotonic() + HANG_S
        while not [r for r in _lines(out / "metrics.jsonl") if r.get("step", 0) >= 5 and r["epoch"] == 1]:
            assert started.poll() is None and time.monotonic() < deadline, started.communicate()[1][-3000:]
            time.sleep(0.05)
        started.send_signal(signal.SIGTERM)
        _, stderr = started.communicate(timeout=KILL_LIMIT_S)
    finally:
        if started.poll() is None:
            started.kill()
    assert started.returncode != 0 and "stopped: Stopped by SIGTERM at epoch 1" in stderr, stderr[-2000:]
    saved = load_checkpoint(out / "model.safetensors")
    assert [part.shape for part in saved.recurrent_state] == [(1, 8, 16), (1, 8, 16)]  # (h, c) of all rows
    workers = 1 if backend_name == "mxnet" else 2
    train(backend_name, workers, ["-m", "tasks.char_lm", "--resume", "--epochs", "2"], out)
    np.testing.assert_allclose(steps(out), steps(runs(backend_name, "sequential", 1)), rtol=STEP_RTOL)
    changed = [r for r in read_metrics(out / "metrics.jsonl") if r["kind"] == "world"]
    assert [r["world_size"] for r in changed] == ([1] if workers == 1 else [])  # the run line says 2


def _lines(path: Path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    except (OSError, ValueError):
        return []


# -- bad launches: one sentence, no rank left waiting ----------------------------------------------

def run_task(args: list[str], timeout: float = HANG_S, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env=environment(**env))


def test_a_batch_that_does_not_split_is_refused_before_any_framework_loads(tmp_path: Path) -> None:
    """In this process, with framework imports blocked (tests/inprocess.py)."""
    env = dict(WORLD_SIZE="2", RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="1")
    refuses([*LM, "--backend", "torch", "--batch-size", "3", "--out", str(tmp_path / "a")], tmp_path,
            "The batch of 3 rows does not divide evenly among 2 workers", env=env)
    refuses([*LM, "--backend", "mxnet", "--batch-size", "2", "--out", str(tmp_path / "b")], tmp_path,
            "4 workers are more than the batch's 2 rows", env=dict(DMLC_ROLE="worker", DMLC_NUM_WORKER="4"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_a_missing_or_unreachable_scheduler_is_one_sentence(tmp_path: Path, backend_name: str) -> None:
    out = str(tmp_path / "run")
    if backend_name == "mxnet":
        result = run_task([*LM, "--backend", "mxnet", "--out", out], DMLC_ROLE="worker", DMLC_NUM_WORKER="2")
        assert_one_sentence(result, "DMLC_PS_ROOT_URI is not: the scheduler's address is missing")
        env = dict(DMLC_ROLE="worker", DMLC_NUM_WORKER="2", DMLC_NUM_SERVER="1", DMLC_PS_ROOT_URI="127.0.0.1",
                   DMLC_PS_ROOT_PORT=str(free_port()))
        fragment = "no answer from the other workers within 3 s while joining the scheduler at 127.0.0.1"
    else:
        result = run_task([*LM, "--backend", "torch", "--out", out], WORLD_SIZE="2", RANK="1")
        assert_one_sentence(result, "WORLD_SIZE is set but MASTER_ADDR is not")
        env = dict(WORLD_SIZE="2", RANK="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
        fragment = "Cannot join the other workers through 127.0.0.1:"
    started = time.monotonic()
    result = run_task([*LM, "--backend", backend_name, "--out", out], SEQCORE_DIST_TIMEOUT_S="3", **env)
    assert_one_sentence(result, fragment)
    assert time.monotonic() - started < 100  # the 3 s given, not the default 120 s (startup on a busy machine)
    assert not Path(out).exists()


def test_a_port_in_use_is_one_sentence() -> None:
    """tasks.launch checks its port before it starts a scheduler (its dry parse loads no framework)."""
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_task(["-m", "tasks.launch", "-n", "2", "--port", str(port), "--", *LM, "--backend", "mxnet"])
        assert_one_sentence(result, f"The scheduler cannot listen on 127.0.0.1:{port}", "pick another --port")


@pytest.mark.slow
def test_a_torch_port_in_use_is_one_sentence(tmp_path: Path) -> None:
    """Rank 0 of a torch group hosts its store on MASTER_PORT."""
    require_backend("torch")
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_task([*LM, "--backend", "torch", "--out", str(tmp_path / "unused")], WORLD_SIZE="2", RANK="0",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), SEQCORE_DIST_TIMEOUT_S="3")
        assert_one_sentence(result, f"Cannot join the other workers through 127.0.0.1:{port}",
                            "address already in use")


@pytest.mark.slow
def test_workers_with_different_configurations_are_refused(tmp_path: Path, backend_name: str) -> None:
    require_backend(backend_name)
    out = str(tmp_path / "run")
    port = str(free_port())
    if backend_name == "torch":
        envs = [dict(WORLD_SIZE="2", RANK=str(r), MASTER_ADDR="127.0.0.1", MASTER_PORT=port) for r in (0, 1)]
        helpers = []
    else:
        base = dict(DMLC_NUM_WORKER="2", DMLC_NUM_SERVER="1", DMLC_PS_ROOT_URI="127.0.0.1", DMLC_PS_ROOT_PORT=port)
        helpers = [subprocess.Popen([sys.executable, "-c", "import backends.mxnet"], cwd=ROOT,
                                    env=environment(**base, DMLC_ROLE=role), stderr=subprocess.DEVNULL)
                   for role in ("scheduler", "server")]
        envs = [dict(base, DMLC_ROLE="worker")] * 2
    workers = [subprocess.Popen([sys.executable, *LM, "--backend", backend_name, "--out", out, "--hidden-size", size],
                                cwd=ROOT, env=environment(SEQCORE_DIST_TIMEOUT_S="30", **env), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE) for env, size in zip(envs, ("16", "8"))]
    try:
        results = [w.communicate(timeout=HANG_S) for w in workers]
    finally:
        for process in workers + helpers:
            if process.poll() is None:
                process.kill()
    for worker, (_, stderr) in zip(workers, results):
        assert_one_sentence(subprocess.CompletedProcess([], worker.returncode, "", stderr),
                            "differs from worker 0's; start every worker with the same flags")
    assert not Path(out).exists()


@pytest.mark.slow
def test_a_refusal_on_rank_0_alone_ends_every_worker_with_its_sentence(tmp_path: Path) -> None:
    """Rank 0 alone checks the folder; the others learn its sentence instead of waiting for it."""
    require_backend("mxnet")
    (tmp_path / "other.txt").write_text("not a run")
    result = run_task(["-m", "tasks.launch", "-n", "2", "--", *LM, "--backend", "mxnet", "--out", str(tmp_path)])
    assert_one_sentence(result, f"{tmp_path} is not empty")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt"]


# -- tasks.launch refuses before it starts anything, and runs where it was started -------------------

def _launch(argv: list[str]) -> int:
    from tasks.launch import main

    return main(argv)


@pytest.mark.parametrize("argv, env, fragment", [
    (["-n", "1000", "--", *LM, "--backend", "mxnet"], {}, "1000 workers are more than the batch's 8 rows"),
    (["-n", "3", "--", *LM, "--backend", "mxnet"], {}, "The batch of 8 rows does not divide evenly among 3"),
    (["-n", "2", "--", *LM, "--backend", "torch"], {}, "tasks.launch (DMLC_ROLE) launches the mxnet backend only"),
    (["-n", "2", "--", *LM, "--backend", "mxnet", "--bogus"], {}, "unrecognized arguments: --bogus"),
    (["-n", "2", "--", "-m", "tasks.nothing"], {}, "The worker's module tasks.nothing is not a task of this checkout"),
    (["-n", "2", "--", *LM], {"SEQCORE_DIST_TIMEOUT_S": "inf"}, "SEQCORE_DIST_TIMEOUT_S must be a positive, finite"),
    (["-n", "2", "--", *LM], {"SEQCORE_DIST_TIMEOUT_S": "nan"}, "SEQCORE_DIST_TIMEOUT_S must be a positive, finite"),
    (["-n", "2", "--", *LM], {"SEQCORE_DIST_TIMEOUT_S": "-1"}, "SEQCORE_DIST_TIMEOUT_S must be a positive, finite"),
])
def test_launch_refuses_before_starting_any_process(argv: list[str], env: dict, fragment: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process: refused before any scheduler, server or worker exists (the dry parse of the
    worker's command line is one short process of its own)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SeqcoreError) as refused:
        _launch(argv)
    assert fragment in str(refused.value)


def test_launch_refuses_a_hostfile_that_is_not_utf8(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_bytes(b"\xff\xfenode1\n")
    with pytest.raises(SeqcoreError, match="is not UTF-8 text .byte 0xff at offset 0."):
        _launch(["-n", "2", "--hostfile", str(hosts), "--", *LM, "--backend", "mxnet"])
    hosts.write_text("# none\n")
    with pytest.raises(SeqcoreError, match="lists no host"):
        _launch(["-n", "2", "--hostfile", str(hosts), "--", *LM, "--backend", "mxnet"])


@pytest.mark.parametrize("text, value", [("", 120.0), ("3", 3.0), ("0.5", 0.5)])
def test_the_collective_timeout_is_a_finite_positive_number(text: str, value: float) -> None:
    from seqcore.parallel.distributed import timeout_s

    assert timeout_s({"SEQCORE_DIST_TIMEOUT_S": text} if text else {}) == value
    for bad in ("inf", "-inf", "nan", "0", "-2", "soon"):
        with pytest.raises(SeqcoreError, match="must be a positive, finite number of seconds"):
            timeout_s({"SEQCORE_DIST_TIMEOUT_S": bad})


@pytest.mark.slow
def test_launch_runs_the_workers_where_it_was_started(tmp_path: Path) -> None:
    """Relative paths mean the caller's directory: the corpus is read and the run written there."""
    require_backend("mxnet")
    (tmp_path / "book.txt").write_text("the time machine by h g wells " * 40)
    result = subprocess.run([sys.executable, "-m", "tasks.launch", "-n", "2", "--", *LM, "--backend", "mxnet",
                             "--epochs", "1", "--max-tokens", "0", "--corpus", "book.txt", "--out", "runs/x",
                             "--prefix", "the"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=environment())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "written to runs/x" in result.stdout and (tmp_path / "runs" / "x" / "model.safetensors").is_file()
