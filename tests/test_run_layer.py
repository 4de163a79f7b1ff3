"""The run layer against a NumPy stand-in for a framework: what it writes, when it stops, what a
resume restores. No framework is loaded, so these pin the layer's own logic in milliseconds.

A batch's loss is a scripted function of the number of batches trained, and the evaluation figure
one of the epoch, so the tests choose exactly when the loss explodes or the figure improves.
"""
from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest

from seqcore.backend import Backend
from seqcore.data.spec import HelloSpec
from seqcore.errors import SeqcoreError
from seqcore.model.spec import InputKind, Loss, ModelSpec, Readout
from seqcore.run.checkpoint import load_checkpoint
from seqcore.run.folder import Mode
from seqcore.run.log import read_metrics
from seqcore.run.session import Run, RunInterrupted, RunSettings
from seqcore.train.spec import TrainSpec

SPEC = ModelSpec(cell="rnn", impl="scratch", input_size=3, hidden_size=2, output_size=3,
                 input_kind=InputKind.ONEHOT, readout=Readout.SEQUENCE)


class FakeModel:
    def __init__(self, params):
        self.params = {k: np.array(v, np.float32) for k, v in params.items()}
        self.updates = 0


class FakeBackend:
    """The loss of a batch is `losses(number of batches trained so far)`."""

    name = "fake"

    def __init__(self, losses):
        self.losses = losses

    def resolve_device(self, device):
        return "cpu"

    def versions(self):
        return {"fake": "1"}

    def build_model(self, spec, params, device):
        return FakeModel(params)

    def make_trainer(self, model, optimizer, lr):
        return {"lr": lr}

    def load_trainer_state(self, model, trainer, arrays):
        model.updates = int(arrays.get("fake.step", [0])[0])

    def export_trainer_state(self, model, trainer):
        return {"fake.step": np.array([model.updates], np.int64)}

    def export_params(self, model):
        return {k: v.copy() for k, v in model.params.items()}

    def begin_state(self, model, batch_size):
        return ("state", batch_size)

    def detach_state(self, state):
        return state

    def state_to_numpy(self, state):
        return [np.zeros((1, state[1], 2), np.float32)]

    def state_from_numpy(self, model, arrays):
        return ("state", arrays[0].shape[1])

    def to_device(self, model, inputs, targets, masks, loss):
        return inputs, targets, masks

    def backward(self, model, batch, state, loss):
        value = float(self.losses(model.updates))
        model.updates += 1  # one batch, one update: the scripted loss sees the updates so far
        return value, state

    def grad_norm_on_device(self, model):
        return 0.5

    def clip_gradients(self, model, norm, max_norm):
        pass

    def read(self, figures):
        return np.array(figures, np.float64)

    train_span = Backend.train_span  # the seam's one loop, over the primitives above

    def step(self, trainer):
        pass

    def set_lr(self, trainer, lr):
        trainer["lr"] = lr


class FakeData:
    spec = HelloSpec()
    fingerprint = {"data_sha256": "abc"}

    def facts(self):
        return {"num_fakes": 3}


class FakeJob:
    loss, monitor, maximize = Loss.CROSS_ENTROPY, "score", False
    data, vocab = FakeData(), None

    def __init__(self, scores=None, steps=3):
        self.scores, self.steps, self.plots = scores or (lambda epoch: 1.0 / epoch), steps, 0

    def num_batches(self):
        return self.steps

    def batches(self, epoch, rng):
        for _ in range(self.steps):
            rng.integers(0, 10)  # consumes the Generator, like a sampler
            yield np.zeros((2, 1), np.int64), np.zeros((2, 1), np.int64)

    def evaluate(self, run, backend, model, epoch):
        return {"score": self.scores(epoch)}

    def describe(self, record):
        return f"epoch {record['epoch']}"

    def plot(self, run):
        self.plots += 1

    def summary(self, run, backend, model):
        return {"epochs": run.log.of_kind("epoch")[-1]["epoch"]}


def fit(out: Path, epochs: int = 4, mode: Mode = Mode.NEW, losses=lambda n: 2.0, job=None, **settings):
    train = TrainSpec(num_epochs=epochs, batch_size=1, num_steps=2)
    job = job or FakeJob()
    settings = {"resumable": frozenset({"epochs"}), **settings}
    with Run("fake", {"epochs": epochs}, RunSettings(out=out, mode=mode, progress=False, **settings), train) as run:
        return run.fit(job, FakeBackend(losses), SPEC), job


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


@pytest.mark.parametrize("span", [1, 2, 0])
def test_a_finite_explosion_is_reported_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path: Path,
                                                                                      span: int) -> None:
    # epoch 1: losses 2, 2, 2 (mean 2); from the 8th update on, 25 > 10 x 2. Span 0 (no log lines):
    # whole epochs, so epoch 3 runs to its end before its losses are read; nothing saves that model.
    with pytest.raises(SeqcoreError, match=r"reached 25, above the divergence limit 20 at epoch 3, step 2.*"
                                           r"last good checkpoint \(epoch 2\)"):
        fit(tmp_path / "run", losses=lambda n: 25.0 if n >= 7 else 2.0, span=span)
    assert kinds(tmp_path / "run")[-1] == "stopped"
    checkpoint = load_checkpoint(tmp_path / "run" / "model.safetensors")
    assert checkpoint.position["epochs_done"] == 2 and checkpoint.optimizer["fake.step"].tolist() == [6]


@pytest.mark.parametrize("span", [1, 2, 0])
def test_a_signal_inside_a_span_stops_at_its_end(tmp_path: Path, span: int) -> None:
    out = tmp_path / "run"
    train = TrainSpec(num_epochs=2, batch_size=1, num_steps=2)
    job, expected = FakeJob(steps=5), {1: 1, 2: 2, 0: 5}[span]
    with pytest.raises(RunInterrupted, match=f"at epoch 2, step {expected},"):
        with Run("fake", {}, RunSettings(out=out, progress=False, span=span), train) as run:
            # a signal during epoch 2's first step: seen at the end of its span
            run.fit(job, FakeBackend(lambda n: run.signals.handle(signal.SIGINT, None) or 2.0 if n == 5 else 2.0),
                    SPEC)
    position = load_checkpoint(out / "model.safetensors").position
    assert position["steps_done"] == expected


def test_divergence_zero_lets_finite_losses_through(tmp_path: Path) -> None:
    summary, _ = fit(tmp_path / "run", losses=lambda n: 25.0 if n >= 7 else 2.0, divergence=0)
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
            run.fit(FakeJob(), FakeBackend(lambda n: 2.0), SPEC)
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
    assert a.optimizer["fake.step"].tolist() == b.optimizer["fake.step"].tolist() == [12]
    assert b.position["updates"] == 12
    with pytest.raises(SeqcoreError, match="already trained 4 epochs"):
        fit(tmp_path / "part", epochs=4, mode=Mode.RESUME)
    assert math.isfinite(whole["wall_s"])
