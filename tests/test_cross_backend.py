"""The two backends side by side, each in its own process, on the same weights and batches.

Lockstep: the first 20 training steps give the same losses on both backends.
Checkpoints: a model written by one backend gives the same validation perplexity on the other.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqcore.backend import BACKENDS
from seqcore.run.log import read_metrics
from tests.conftest import ROOT, python, require_backend

pytestmark = pytest.mark.slow  # every test here runs a framework in a subprocess

LOCKSTEP_STEPS = 20
# float32 on both sides, different summation orders: per-step differences start near 1e-7 and
# grow with each update (measured: at most 9e-7 relative over 20 steps for concise LSTM).
LOCKSTEP_RTOL = 1e-4
CHECKPOINT_RTOL = 1e-5  # one forward pass over the validation text, no training in between

TINY = ["--max-tokens", "2000", "--batch-size", "8", "--num-steps", "10", "--hidden-size", "32",
        "--no-progress", "--num-preds", "10", "--eval-every", "1", "--device", "cpu"]


def train_both(tmp_path: Path, *args: str) -> dict[str, list[dict]]:
    """Run tasks.char_lm on every backend concurrently, one process each; returns their metrics."""
    for name in BACKENDS:
        require_backend(name)
    processes = {}
    for name in BACKENDS:
        command = [sys.executable, "-m", "tasks.char_lm", "--backend", name, *TINY, *args,
                   "--out", str(tmp_path / name)]
        # One thread each: two multi-threaded processes on a small machine oversubscribe it badly.
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        processes[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)
    for name, process in processes.items():
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, f"{name}: {err[-3000:]}"
    return {name: read_metrics(tmp_path / name / "metrics.jsonl") for name in BACKENDS}


@pytest.mark.parametrize("cell, impl, sampler, extra", [
    ("lstm", "concise", "sequential", ()), ("gru", "scratch", "random", ()), ("rnn", "concise", "sequential", ()),
    ("gru", "concise", "sequential", ("--input", "embedding", "--embed-size", "16"))])
def test_lockstep_losses(tmp_path: Path, cell: str, impl: str, sampler: str, extra: tuple) -> None:
    metrics = train_both(tmp_path, "--cell", cell, "--impl", impl, "--sampler", sampler,
                         "--epochs", "1", "--log-every", "1", *extra)
    losses = {name: [r["loss"] for r in records if r["kind"] == "step"][:LOCKSTEP_STEPS]
              for name, records in metrics.items()}
    first, second = losses.values()
    assert len(first) == len(second) == LOCKSTEP_STEPS
    assert first[-1] < first[0]  # it learns: not two equally broken runs
    assert first == pytest.approx(second, rel=LOCKSTEP_RTOL)


def test_checkpoints_cross_backends(tmp_path: Path) -> None:
    metrics = train_both(tmp_path, "--cell", "lstm", "--impl", "scratch", "--epochs", "2")
    for writer in BACKENDS:
        written = [r for r in metrics[writer] if r["kind"] == "summary"][0]
        for reader in BACKENDS:
            result = python("-m", "tasks.evaluate", "--checkpoint", written["checkpoint"], "--backend", reader,
                            "--batch-size", "8", "--num-steps", "10", "--device", "cpu", "--json", check=True)
            evaluated = json.loads(result.stdout)
            assert evaluated["written_by"] == writer
            assert evaluated["val_ppl"] == pytest.approx(written["val_ppl"], rel=CHECKPOINT_RTOL), (writer, reader)
