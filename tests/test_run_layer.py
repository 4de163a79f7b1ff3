"""The run layer against the NumPy fake backend (tests/fakes.py): what it writes, when it stops,
what a resume restores. No framework is loaded, so these pin the layer's own logic in milliseconds,
on a model that really trains (a one-layer RNN regressing a sine of its inputs, with Adam).

The job's batches are drawn from the run's Generator; `scale(n)` multiplies the targets of the
batch trained as update n, so a test chooses when the loss explodes; the evaluation figure is a
scripted function of the epoch, so a test chooses when it improves.
"""
from __future__ import annotations

import json
import math
import signal
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pytest

from seqcore.backend import Optimizer
from seqcore.data.spec import HelloSpec
from seqcore.errors import SeqcoreError
from seqcore.model.spec import InputKind, Loss, ModelSpec, Readout
from seqcore.run.checkpoint import load_checkpoint
from seqcore.run.folder import Mode
from seqcore.run.log import read_metrics
from seqcore.run.session import Run, RunInterrupted, RunSettings
from seqcore.train.spec import TrainSpec
from tests.fakes import NumpyBackend

SPEC = ModelSpec(cell="rnn", impl="scratch", input_size=3, hidden_size=2, output_size=3,
                 input_kind=InputKind.DENSE, readout=Readout.SEQUENCE)


class FakeData:
    spec = HelloSpec()
    fingerprint = {"data_sha256": "abc"}

    def facts(self):
        return {"num_fakes": 3}


class FakeJob:
    loss, monitor, maximize = Loss.MSE, "score", False
    data, vocab = FakeData(), None

    def __init__(self, scores=None, steps=3, scale: Callable[[int], float] = lambda n: 1.0):
        self.scores, self.steps, self.scale, self.plots = scores or (lambda epoch: 1.0 / epoch), steps, scale, 0

    def num_batches(self):
        return self.steps

    def batches(self, epoch, rng):
        """(T=2, N=1, 3) features from the run's Generator (as a sampler draws), targets scale(n) x sin."""
        for index in range(self.steps):
            x = rng.standard_normal((2, 1, 3)).astype(np.float32)
            yield x, (self.scale((epoch - 1) * self.steps + index) * np.sin(x)).astype(np.float32)

    def evaluate(self, run, backend, model, epoch):
        return {"score": self.scores(epoch)}

    def describe(self, record):
        return f"epoch {record['epoch']}"

    def plot(self, run):
        self.plots += 1

    def summary(self, run, backend, model):
        return {"epochs": run.log.of_kind("epoch")[-1]["epoch"]}


def train_spec(epochs: int) -> TrainSpec:
    # Adam: its step count is in every checkpoint; a small rate keeps the losses near their start.
    return TrainSpec(num_epochs=epochs, batch_size=1, num_steps=2, optimizer=Optimizer.ADAM, lr=0.01)


def fit(out: Path, epochs: int = 4, mode: Mode = Mode.NEW, job=None,
        on_backward: Optional[Callable[[int], None]] = None, **settings):
    """Run `job` (a FakeJob) for `epochs` on the fake; on_backward(updates) runs before each step trains."""
    job = job or FakeJob()
    settings = {"resumable": frozenset({"epochs"}), **settings}
    with Run("fake", {"epochs": epochs}, RunSettings(out=out, mode=mode, progress=False, **settings),
             train_spec(epochs)) as run:
        return run.fit(job, NumpyBackend(on_backward), SPEC), job


def train_losses(out: Path) -> list[float]:
    """Every step line's and epoch line's training loss, in order."""
    return [r["loss"] if r["kind"] == "step" else r["train_loss"] for r in read_metrics(out / "metrics.jsonl")
            if r["kind"] in ("epoch", "step")]


def kinds(out: Path) -> list[str]:
    return [r["kind"] for r in read_metrics(out / "metrics.jsonl")]


def test_a_run_writes_its_files_and_one_run_and_summary_line(tmp_path: Path) -> None:
    summary, _ = fit(tmp_path / "run")
    assert summary["epochs"] == 4
    assert kinds(tmp_path / "run") == ["run", "epoch", "epoch", "epoch", "epoch", "summary"]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["task"] == "fake" and saved["config"] == {"epochs": 4}
    checkpoint = load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert checkpoint.position["epochs_done"] == 4 and checkpoint.fingerprint == {"data_sha256": "abc"}
    assert (tmp_path / "run" / "best.safetensors").is_file()


def exploding(n: int) -> float:
    return 30.0 if n >= 7 else 1.0  # from the 8th update on, targets 30 x as large: losses about 900 x


@pytest.mark.parametrize("span", [1, 2, 0])
def test_a_finite_explosion_is_reported_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path: Path,
                                                                                      span: int) -> None:
    # The limit is 10 x epoch 1's mean loss; update 8 is epoch 3's step 2. Span 0 (no log lines):
    # whole epochs, so epoch 3 runs to its end before its losses are read; nothing saves that model.
    with pytest.raises(SeqcoreError, match=r"reached [0-9.e+]+, above the divergence limit [0-9.e+]+ at epoch 3, "
                                           r"step 2.*last good checkpoint \(epoch 2\)") as stopped:
        fit(tmp_path / "run", job=FakeJob(scale=exploding), span=span)
    assert kinds(tmp_path / "run")[-1] == "stopped"
    checkpoint = load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert checkpoint.position["epochs_done"] == 2 and checkpoint.optimizer["adam.step"].tolist() == [6]
    epoch_one = read_metrics(tmp_path / "run" / "metrics.jsonl")[1]
    limit = 10 * checkpoint.position["reference_loss"]
    assert f"divergence limit {limit:.4g} " in str(stopped.value)
    assert checkpoint.position["reference_loss"] == pytest.approx(epoch_one["train_loss"], rel=1e-9)


@pytest.mark.parametrize("span", [1, 2, 0])
def test_a_signal_inside_a_span_stops_at_its_end(tmp_path: Path, span: int) -> None:
    out = tmp_path / "run"
    train = TrainSpec(num_epochs=2, batch_size=1, num_steps=2)
    job, expected = FakeJob(steps=5), {1: 1, 2: 2, 0: 5}[span]
    with pytest.raises(RunInterrupted, match=f"at epoch 2, step {expected},"):
        with Run("fake", {}, RunSettings(out=out, progress=False, span=span), train) as run:
            # a signal during epoch 2's first step: seen at the end of its span
            run.fit(job, NumpyBackend(lambda n: run.signals.handle(signal.SIGINT, None) if n == 5 else None), SPEC)
    position = load_checkpoint(out / "model.safetensors").position
    assert position["steps_done"] == expected


def test_divergence_zero_lets_finite_losses_through(tmp_path: Path) -> None:
    summary, _ = fit(tmp_path / "run", job=FakeJob(scale=exploding), divergence=0)
    assert summary["epochs"] == 4


def test_patience_stops_after_evaluations_without_a_new_best(tmp_path: Path) -> None:
    job = FakeJob(scores=lambda epoch: [0.5, 0.4, 0.6, 0.6, 0.6, 0.6][epoch - 1])
    summary, _ = fit(tmp_path / "run", epochs=6, job=job, patience=2)
    assert summary["epochs"] == 4  # best at 2; epochs 3 and 4 did not beat it
    assert kinds(tmp_path / "run")[-2] == "early_stop"
    assert load_checkpoint(tmp_path / "run" / "best.safetensors").provenance["epoch"] == 2


def test_figures_are_drawn_at_most_every_interval_but_always_at_the_end(tmp_path: Path) -> None:
    _, job = fit(tmp_path / "run", epochs=5)
    assert job.plots == 2  # the first evaluation, then the forced one at the end (all within 10 s)


def test_a_run_refused_before_training_leaves_no_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    train = TrainSpec(num_epochs=1, batch_size=1, num_steps=2)
    with pytest.raises(SeqcoreError, match="corpus is missing"):
        with Run("fake", {}, RunSettings(out=out, progress=False), train):
            raise SeqcoreError("The corpus is missing.")  # as a task's data loading would
    assert not out.exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    with pytest.raises(SeqcoreError):
        with Run("fake", {}, RunSettings(out=existing, progress=False), train):
            raise SeqcoreError("The corpus is missing.")
    assert existing.is_dir() and not (existing / "config.json").exists()  # the user's folder stays


def test_a_signal_after_the_last_step_still_stops_the_caller(tmp_path: Path) -> None:
    train = TrainSpec(num_epochs=1, batch_size=1, num_steps=2)
    with pytest.raises(RunInterrupted, match="after the run .* had finished") as stopped:
        with Run("fake", {}, RunSettings(out=tmp_path / "run", progress=False), train) as run:
            run.fit(FakeJob(), NumpyBackend(), SPEC)
            run.signals.handle(signal.SIGTERM, None)  # as if it came while the summary was written
    assert stopped.value.exit_code == 128 + signal.SIGTERM
    assert kinds(tmp_path / "run")[-1] == "summary"


def test_resume_continues_the_epoch_count_schedule_and_generator(tmp_path: Path) -> None:
    whole, _ = fit(tmp_path / "whole", epochs=4, log_every=1)
    fit(tmp_path / "part", epochs=2, log_every=1)
    fit(tmp_path / "part", epochs=4, mode=Mode.RESUME, log_every=1)
    assert kinds(tmp_path / "part") == kinds(tmp_path / "whole")
    a, b = (load_checkpoint(tmp_path / name / "model.safetensors") for name in ("whole", "part"))
    assert a.position["epoch_rng"] == b.position["epoch_rng"]
    assert a.optimizer["adam.step"].tolist() == b.optimizer["adam.step"].tolist() == [12]
    assert b.position["updates"] == 12
    for name, value in a.params.items():  # the same numbers, bit for bit
        np.testing.assert_array_equal(b.params[name], value, err_msg=name)
        np.testing.assert_array_equal(b.optimizer[f"adam.m/{name}"], a.optimizer[f"adam.m/{name}"])
    assert train_losses(tmp_path / "part") == train_losses(tmp_path / "whole")
    with pytest.raises(SeqcoreError, match="already trained 4 epochs"):
        fit(tmp_path / "part", epochs=4, mode=Mode.RESUME)
    assert math.isfinite(whole["wall_s"])
