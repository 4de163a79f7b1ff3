"""Dropout, bidirectional and the book's GRU through training, on the real command lines, each
backend in its own process.

1. Lockstep: a 2-layer GRU language model with --dropout 0.3, concise and scratch, trained on
   both backends from the same weights, batches and masks (drawn in NumPy by
   seqcore.train.loop.step_masks): the per-step losses agree to LOCKSTEP_RTOL over every step.
2. The masks are the ones step_masks draws, and they matter: the first step's loss equals the
   NumPy reference's on those masks, differs from the reference without them, and a run with
   dropout 0.3 differs from one with dropout 0 from the first step on.
3. Resume: with dropout, 2 epochs straight equal 1 epoch + --resume, and a run stopped by SIGINT
   inside an epoch and resumed equals an uninterrupted one (every step line and tensor, ==).
4. End to end: mnist_rows --bidirectional --dropout 0.2 and sine --mode sin2cos --bidirectional
   on both backends (same step losses, evaluation without dropout); a dropout checkpoint
   evaluated by tasks.evaluate on the other backend gives the perplexity the run logged.
5. The flags reach the ModelSpec (in process, no framework): --gru-reset before reaches only the
   GRU of sine --cell all, and the saved config and checkpoint spec hold every new field.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from seqcore.backend import BACKENDS
from seqcore.data import mnist
from seqcore.jobs.lm import LanguageModelJob, model_spec, prepare_data
from seqcore.model import reference
from seqcore.model.params import init_params
from seqcore.model.spec import GRUReset, Readout
from seqcore.run.checkpoint import load_checkpoint
from seqcore.run.log import read_metrics
from seqcore.run.session import BATCH_STREAM
from seqcore.train.loop import step_masks
from seqcore.train.spec import TrainSpec
from tests.conftest import ROOT, python, require_backend
from tests.test_mnist_loader import SHARED_MNIST
from tests.test_run_faults import assert_same_run, finish, interrupt_in_epoch_two, of_kind, records, start

# float32 on both sides, different summation orders; the masks are identical. Measured over the
# 50 SGD steps of each lockstep run: largest relative difference 4.9e-7 (concise and scratch),
# while dropping other units moves the loss by 1e-3 or more: a mask applied (or drawn)
# differently by one backend stands out.
LOCKSTEP_RTOL = 1e-5
REFERENCE_RTOL = 1e-5  # one forward pass against the float64 NumPy reference
SEED = 3
LM = ["--cell", "gru", "--num-layers", "2", "--dropout", "0.3", "--max-tokens", "2000", "--batch-size", "8",
      "--num-steps", "10", "--hidden-size", "16", "--epochs", "2", "--log-every", "1", "--eval-every", "1",
      "--num-preds", "10", "--no-progress", "--device", "cpu", "--seed", str(SEED)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def train_all(runs: dict[str, list[str]], root: Path) -> dict[str, Path]:
    """`python -m tasks.<argv...> --out root/<name>` for every named run, two at a time; their folders."""
    names, folders = list(runs), {}
    for first in range(0, len(names), 2):
        batch = {}
        for name in names[first:first + 2]:
            folders[name] = root / name
            batch[name] = subprocess.Popen([sys.executable, "-m", *runs[name], "--out", str(root / name)],
                                           cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True)
        for name, process in batch.items():
            _, err = process.communicate(timeout=600)
            assert process.returncode == 0, f"{name}: {err[-3000:]}"
    return folders


def step_losses(folder: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(folder / "metrics.jsonl") if r["kind"] == "step"]


def largest_relative_difference(a: list[float], b: list[float]) -> float:
    x, y = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(x - y) / np.abs(y)))


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """(backend-impl) -> the folder of a 2-layer GRU LM run with dropout 0.3; 'nodrop': dropout 0."""
    for name in BACKENDS:
        require_backend(name)
    runs = {f"{backend}-{impl}": ["tasks.char_lm", "--backend", backend, "--impl", impl, *LM]
            for impl in ("concise", "scratch") for backend in BACKENDS}
    runs["nodrop"] = ["tasks.char_lm", "--backend", "torch", "--impl", "concise", *LM, "--dropout", "0"]
    return train_all(runs, tmp_path_factory.mktemp("lm"))


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["concise", "scratch"])
def test_lockstep_losses_with_dropout(lm_runs: dict[str, Path], impl: str) -> None:
    first, second = (step_losses(lm_runs[f"{backend}-{impl}"]) for backend in BACKENDS)
    assert len(first) == len(second) >= 40
    assert np.mean(first[-5:]) < np.mean(first[:5])  # it learns: not two equally broken runs
    worst = largest_relative_difference(first, second)
    print(f"\n{impl} GRU, 2 layers, dropout 0.3: {len(first)} steps, largest relative difference "
          f"between {' and '.join(BACKENDS)}: {worst:.2e}")
    assert first == pytest.approx(second, rel=LOCKSTEP_RTOL)


def _first_lm_batch(impl: str) -> tuple:
    """The LM runs' first batch, weights and masks, rebuilt in NumPy as the run layer draws them."""
    data = prepare_data(None, "char", 2000, 0.1, 8, 10)
    spec = model_spec("gru", impl, len(data.vocab), 16, 2, dropout=0.3)
    train = TrainSpec(batch_size=8, num_steps=10, num_epochs=2, seed=SEED)
    job = LanguageModelJob(data, train, ("t",), 1, 0.0)
    inputs, targets = next(iter(job.batches(1, np.random.default_rng([SEED, BATCH_STREAM]))))
    params = {k: v.astype(np.float64) for k, v in init_params(spec, train.init, SEED).items()}
    return spec, params, inputs, targets


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["concise", "scratch"])
def test_first_step_uses_the_masks_step_masks_draws(lm_runs: dict[str, Path], impl: str) -> None:
    spec, params, inputs, targets = _first_lm_batch(impl)
    masks = step_masks(spec, SEED, 1, 1, *inputs.shape)
    assert [m.shape for m in masks] == [(10, 8, 16), (10, 8, 16)]  # layer 1's inputs, the head's input
    dropped = reference.loss("cross_entropy", reference.forward(spec, params, inputs, None, masks)[0], targets)
    plain = reference.loss("cross_entropy", reference.forward(spec, params, inputs)[0], targets)
    assert abs(dropped - plain) > 1e-3 * plain  # the masks change the loss
    for backend in BACKENDS:
        logged = step_losses(lm_runs[f"{backend}-{impl}"])[0]
        assert logged == pytest.approx(dropped, rel=REFERENCE_RTOL), (backend, logged, dropped, plain)
    assert step_losses(lm_runs["nodrop"])[0] == pytest.approx(plain, rel=REFERENCE_RTOL)


@pytest.mark.slow
def test_dropout_changes_every_step(lm_runs: dict[str, Path]) -> None:
    dropped, plain = step_losses(lm_runs["torch-concise"]), step_losses(lm_runs["nodrop"])
    assert len(dropped) == len(plain)
    assert all(abs(a - b) > 1e-6 * b for a, b in zip(dropped, plain))


@pytest.mark.slow
def test_checkpoint_spec_and_evaluation_without_dropout(lm_runs: dict[str, Path]) -> None:
    """The checkpoint's spec holds the new fields; tasks.evaluate rebuilds the model from it on the
    other backend and measures the validation perplexity the run logged (no dropout at evaluation)."""
    for writer, reader in zip(BACKENDS, reversed(BACKENDS)):
        folder = lm_runs[f"{writer}-concise"]
        saved = load_checkpoint(folder / "model.safetensors")
        assert saved.model_spec.dropout == 0.3 and saved.model_spec.num_layers == 2
        assert saved.model_spec.gru_reset is GRUReset.AFTER and not saved.model_spec.bidirectional
        config = json.loads((folder / "config.json").read_text())["config"]
        assert (config["dropout"], config["bidirectional"], config["gru_reset"]) == (0.3, False, "after")
        logged = [r for r in read_metrics(folder / "metrics.jsonl") if r["kind"] == "summary"][0]
        result = python("-m", "tasks.evaluate", "--checkpoint", str(folder), "--backend", reader,
                        "--device", "cpu", "--num-preds", "10", "--json", check=True)
        evaluated = json.loads(result.stdout)
        assert evaluated["val_ppl"] == pytest.approx(logged["val_ppl"], rel=1e-5), (writer, reader)
        assert evaluated["samples"]["time traveller"] == logged["samples"]["time traveller"]


@pytest.mark.slow
def test_resume_at_an_epoch_boundary_equals_the_straight_run(lm_runs: dict[str, Path], tmp_path: Path) -> None:
    """The straight run is the fixture's (2 epochs); this one stops after 1 and resumes to 2."""
    out = tmp_path / "resumed"
    args = ["--backend", "torch", "--impl", "concise", *LM]
    finish(start("char_lm", [*args, "--epochs", "1", "--out", str(out)], tmp_path / "logs"))
    finish(start("char_lm", ["--out", str(out), "--resume", "--epochs", "2"], tmp_path / "logs"))
    assert_same_run(out, lm_runs["torch-concise"])


# ~60 steps per epoch: a signal a tenth into epoch 2 lands well inside it.
INSIDE = ["--cell", "gru", "--num-layers", "2", "--dropout", "0.3", "--epochs", "2", "--max-tokens", "1200",
          "--batch-size", "4", "--num-steps", "5", "--hidden-size", "8", "--num-preds", "5", "--eval-every", "1",
          "--no-progress", "--log-every", "1", "--device", "cpu", "--sampler", "random", "--impl", "scratch"]


@pytest.mark.slow
def test_signal_inside_an_epoch_then_resume_draws_the_same_masks(tmp_path: Path) -> None:
    """A resume inside epoch 2 restarts at step k + 1, whose masks come from (seed, epoch, step)
    alone. One backend: the masks are drawn in the core (tests/test_run_faults.py resumes both)."""
    require_backend("torch")
    reference_run, out, uninterrupted, interrupted, per_epoch = interrupt_in_epoch_two(
        "char_lm", ["--backend", "torch", *INSIDE], tmp_path, signal.SIGINT)
    assert interrupted.wait(timeout=600) == 128 + signal.SIGINT
    stop = of_kind(records(out), "interrupted")
    assert len(stop) == 1 and stop[0]["epoch"] == 2 and 0 < stop[0]["step"] < per_epoch, (stop, per_epoch)
    finish(start("char_lm", ["--out", str(out), "--resume"], tmp_path / "logs"))
    finish(uninterrupted)
    assert_same_run(out, reference_run)
    print(f"\ntorch: SIGINT at epoch 2, step {stop[0]['step']} of {per_epoch}; the resumed run with dropout "
          f"equals the uninterrupted one ({len(of_kind(records(out), 'step'))} steps)")


# -- end to end: MNIST rows and sin -> cos, bidirectional ------------------------------------------

MNIST = ["tasks.mnist_rows", "--data-dir", str(SHARED_MNIST), "--device", "cpu", "--no-progress",
         "--limit-train", "512", "--limit-test", "256", "--hidden-size", "16", "--batch-size", "64",
         "--num-layers", "2", "--bidirectional", "--dropout", "0.2", "--epochs", "2", "--log-every", "1",
         "--seed", str(SEED)]
SINE = ["tasks.sine", "--mode", "sin2cos", "--bidirectional", "--cell", "gru", "--iterations", "15",
        "--hidden-size", "8", "--num-layers", "2", "--dropout", "0.1", "--batch-size", "2", "--epochs", "2",
        "--no-progress", "--device", "cpu"]
# Adam on both sides (MXNet's epsilon applied as PyTorch does); the first step agrees exactly, then
# float32 rounding grows with each update: measured at most 1.4e-6 (MNIST, 16 steps) and 7.2e-5
# (sine, 30 steps of lr 0.02 on losses down to 0.015, the same drift as without dropout).
END_TO_END_RTOL = 1e-4
EVAL_MSE_RTOL = 1e-3  # eval MSE of ~0.003 after those steps: measured 1.6e-4 apart


@pytest.fixture(scope="module")
def bidirectional_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    for name in BACKENDS:
        require_backend(name)
    if not SHARED_MNIST.is_dir():
        pytest.skip(f"no MNIST files at {SHARED_MNIST}")
    runs = {f"{task}-{backend}": [*argv, "--backend", backend]
            for task, argv in (("mnist", MNIST), ("sine", SINE)) for backend in BACKENDS}
    return train_all(runs, tmp_path_factory.mktemp("bidirectional"))


@pytest.mark.slow
def test_mnist_bidirectional_dropout_on_both_backends(bidirectional_runs: dict[str, Path]) -> None:
    folders = [bidirectional_runs[f"mnist-{backend}"] for backend in BACKENDS]
    first, second = (step_losses(folder) for folder in folders)
    assert len(first) == len(second) == 16
    print(f"\nmnist_rows --bidirectional --dropout 0.2: largest relative step-loss difference "
          f"{largest_relative_difference(first, second):.2e}")
    assert first == pytest.approx(second, rel=END_TO_END_RTOL)
    summaries = [[r for r in read_metrics(f / "metrics.jsonl") if r["kind"] == "summary"][0] for f in folders]
    assert summaries[0]["test_accuracy"] > 0.2  # chance is 0.1
    assert summaries[0]["test_accuracy"] == pytest.approx(summaries[1]["test_accuracy"], abs=0.01)
    saved = load_checkpoint(folders[0] / "model.safetensors")
    assert saved.model_spec.bidirectional and saved.model_spec.readout is Readout.LAST
    assert saved.model_spec.dropout == 0.2
    assert (folders[0] / "digits.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_mnist_first_step_equals_the_reference(bidirectional_runs: dict[str, Path]) -> None:
    """LAST readout, bidirectional: the head reads the forward final and reverse final states,
    through an (N, 2H) mask."""
    saved = load_checkpoint(bidirectional_runs[f"mnist-{BACKENDS[0]}"] / "model.safetensors")
    spec = saved.model_spec
    data = mnist.load_split("train", SHARED_MNIST, progress=False).head(512)
    inputs, targets = next(mnist.row_batches(data, 64, np.random.default_rng([SEED, BATCH_STREAM])))
    params = {k: v.astype(np.float64) for k, v in init_params(spec, "uniform", SEED).items()}
    masks = step_masks(spec, SEED, 1, 1, *inputs.shape[:2])
    assert [m.shape for m in masks] == [(28, 64, 32), (64, 32)]
    expected = reference.loss("cross_entropy", reference.forward(spec, params, inputs, None, masks)[0], targets)
    for backend in BACKENDS:
        assert step_losses(bidirectional_runs[f"mnist-{backend}"])[0] == pytest.approx(expected, rel=REFERENCE_RTOL)


@pytest.mark.slow
def test_sine_sin2cos_bidirectional_on_both_backends(bidirectional_runs: dict[str, Path]) -> None:
    first, second = (step_losses(bidirectional_runs[f"sine-{backend}"]) for backend in BACKENDS)
    assert len(first) == len(second) == 30
    assert np.mean(first[-5:]) < np.mean(first[:5]) / 2  # it learns
    print(f"\nsine sin2cos --bidirectional --dropout 0.1: largest relative step-loss difference "
          f"{largest_relative_difference(first, second):.2e}")
    assert first == pytest.approx(second, rel=END_TO_END_RTOL)
    mse = [[r["eval_mse"] for r in read_metrics(bidirectional_runs[f"sine-{b}"] / "metrics.jsonl")
            if r["kind"] == "epoch"] for b in BACKENDS]
    assert mse[0] == pytest.approx(mse[1], rel=EVAL_MSE_RTOL)
    assert (bidirectional_runs[f"sine-{BACKENDS[0]}"] / "prediction.png").read_bytes()[:4] == b"\x89PNG"


# -- the flags reach the spec (no framework) -----------------------------------------------------

def test_flags_reach_the_model_spec() -> None:
    from tasks.cli import parse_config
    from tasks.hello import HelloConfig
    from tasks.mnist_rows import MnistConfig
    from tasks.sine import SineConfig

    sine = parse_config(SineConfig, "sine", ["--cell", "all", "--impl", "scratch", "--gru-reset", "before",
                                             "--mode", "sin2cos", "--bidirectional", "--dropout", "0.5"], "")
    assert sine.model_spec("gru").gru_reset is GRUReset.BEFORE
    assert sine.model_spec("rnn").gru_reset is GRUReset.AFTER and sine.model_spec("lstm").gru_reset is GRUReset.AFTER
    assert all(sine.model_spec(c).bidirectional and sine.model_spec(c).dropout == 0.5 for c in sine.cells())
    assert sine.saved()["gru_reset"] == "before" and sine.saved()["bidirectional"] is True
    rows = parse_config(MnistConfig, "mnist_rows", ["--cell", "gru", "--impl", "scratch", "--gru-reset", "before",
                                                     "--bidirectional"], "")
    shape = mnist.Shape(rows=28, columns=28, num_classes=10)
    spec = rows.model_spec(shape)
    assert spec.gru_reset is GRUReset.BEFORE and spec.bidirectional and spec.output_width == 2 * spec.hidden_size
    hello = parse_config(HelloConfig, "hello", ["--cell", "gru", "--gru-reset", "before", "--dropout", "0.25"], "")
    assert hello.model_spec(4).gru_reset is GRUReset.BEFORE and hello.model_spec(4).dropout == 0.25
    plain = MnistConfig().model_spec(shape)
    assert not plain.bidirectional and plain.dropout == 0.0 and plain.gru_reset is GRUReset.AFTER
