"""Sine waves for recurrent regression: sin(t) -> cos(t) windows with the state carried, or
next-step prediction followed by generation; and the Job that the run layer (seqcore.run)
trains: batches, evaluation (eval MSE or generation MAE, the monitored figure), figures, summary.

Everything that must agree across backends is decided in NumPy: every window and every phase
(seqcore.data.waves, through seqcore.data.spec.SineSpec; phases drawn from the run's batch
Generator), the evaluation windows and the generation's first value.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from seqcore.backend import Backend, Model
from seqcore.data.spec import Waves
from seqcore.data.waves import NEXT, SIN2COS, STEP, sin2cos_batches
from seqcore.jobs.figures import plot_curves
from seqcore.model.spec import Loss
from seqcore.train.loop import Batch

EVAL_WINDOWS = 10  # sin2cos windows predicted at each evaluation
FINAL_STEPS = 10  # the summary's final loss: the mean of the last 10 step lines
WAVE_FIGURES = {SIN2COS: ("prediction.png", "cos(t)"), NEXT: ("generation.png", "sin(t)")}  # file, truth


def generate(backend: Backend, model: Model, first: float, num_steps: int) -> np.ndarray:
    """Feed `first`, then each prediction, back in one step at a time: (num_steps,) values."""
    state, value, points = backend.begin_state(model, 1), np.full((1, 1, 1), first, np.float32), []
    for _ in range(num_steps):
        value, state = backend.forward(model, value.astype(np.float32), state)  # (1, 1, 1)
        points.append(float(value[0, 0, 0]))
    return np.asarray(points)


@dataclasses.dataclass(frozen=True)
class Wave:
    """One model's values against the true curve, for the wave figures."""

    t: np.ndarray  # (P,) rad
    truth: np.ndarray  # (P,)
    values: np.ndarray  # (P,)


def predict_windows(backend: Backend, model: Model, first: int, num_steps: int) -> tuple[float, Wave]:
    """cos(t) on windows first .. first + 9 from a zero state, state carried; the MSE leaves out the
    first window, where the state starts at zero and sin 0 = 0 does not tell rising from falling."""
    state, targets, outputs = backend.begin_state(model, 1), [], []
    for inputs, target in sin2cos_batches(first, EVAL_WINDOWS, num_steps, 1):
        output, state = backend.forward(model, inputs, state)  # (T, 1, 1)
        targets.append(target[:, 0, 0])
        outputs.append(output[:, 0, 0])
    truth, values = np.concatenate(targets), np.concatenate(outputs)
    t = np.linspace(first * np.pi, (first + EVAL_WINDOWS) * np.pi, truth.size, endpoint=False)
    return float(np.mean((values[num_steps:] - truth[num_steps:]) ** 2)), Wave(t, truth, values)


def generation(backend: Backend, model: Model, num_steps: int) -> tuple[float, Wave]:
    """`num_steps` values generated from sin(0) against sin(t): the mean absolute error."""
    values = generate(backend, model, 0.0, num_steps)
    t = STEP * np.arange(1, num_steps + 1)
    truth = np.sin(t)
    return float(np.mean(np.abs(values - truth))), Wave(t, truth, values)


def loss_points(records: Sequence[Mapping[str, Any]], iterations: int) -> list[tuple[float, float]]:
    """(iteration, loss): the step lines, or each epoch's mean loss where there are none (--log-every 0)."""
    steps = [(r["global_step"], r["loss"]) for r in records if r.get("kind") == "step" and r.get("loss") is not None]
    return steps or [(r["epoch"] * iterations, r["train_loss"]) for r in records
                     if r.get("kind") == "epoch" and r.get("train_loss") is not None]


def plot_losses(path: Path, curves: Mapping[str, Sequence[tuple[float, float]]], title: str) -> None:
    plot_curves(path, curves, title=title, xlabel="iteration", ylabel="MSE", logy=True)


def plot_waves(path: Path, waves: Mapping[str, Wave], truth_label: str, title: str) -> None:
    """The true curve (of the first wave) as a line, each model's values as points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    first = next(iter(waves.values()))
    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    axes.plot(first.t, first.truth, color="black", linewidth=1.2, label=truth_label)
    for label, wave in waves.items():
        axes.plot(wave.t, wave.values, ".", markersize=4, label=label)
    axes.set(title=title, xlabel="t (rad)", ylabel="value")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


class SineJob:
    """The run layer's Job for one sine model. An epoch is `iterations` batches: in sin2cos the
    windows after the previous epoch's, the state carried across them; in next mode independent
    segments whose phases come from the run's batch Generator. Each evaluation measures the figure
    the mode is about (eval_mse or generation_mae, the monitored one, lower is better)."""

    loss = Loss.MSE
    maximize = False

    def __init__(self, data: Waves, gen_steps: int, cell: str, label: str):
        self.data, self.gen_steps, self.cell = data, gen_steps, cell
        self.mode, self.iterations, self.num_steps = data.spec.mode, data.spec.iterations, data.spec.num_steps
        self.label = label  # 'BACKEND IMPL CELL', for titles
        self.monitor = "eval_mse" if self.mode == SIN2COS else "generation_mae"
        self.vocab: Optional[dict[str, Any]] = None
        self.wave: Optional[Wave] = None  # of the latest evaluation, for the figures

    def num_batches(self) -> int:
        return self.iterations

    def batches(self, epoch: int, rng: np.random.Generator) -> Iterable[Batch]:
        return self.data.batches(epoch, rng)

    def measure(self, backend: Backend, model: Model, epoch: int) -> float:
        """The monitored figure after `epoch` epochs; keeps its wave for the figures."""
        if self.mode == SIN2COS:  # the windows right after the ones trained on
            figure, self.wave = predict_windows(backend, model, epoch * self.iterations, self.num_steps)
        else:
            figure, self.wave = generation(backend, model, self.gen_steps)
        return figure

    def evaluate(self, run, backend: Backend, model: Model, epoch: int) -> dict[str, Any]:
        return {self.monitor: self.measure(backend, model, epoch)}

    def describe(self, record: Mapping[str, Any]) -> str:
        figure = (f"eval MSE {record['eval_mse']:.5f}" if self.mode == SIN2COS else
                  f"generation MAE {record['generation_mae']:.4f} over {self.gen_steps} steps")
        return f"epoch {record['epoch']}: train loss {record['train_loss']:.5f}, {figure}"

    def plot(self, run) -> None:
        """loss.png; the wave figure once an evaluation has run in this process (not yet after a
        resume that stopped again before its first evaluation: the earlier figure stays)."""
        plot_losses(run.folder / "loss.png", {self.cell: loss_points(run.log.records, self.iterations)},
                    f"{self.label}: {self.mode} training loss")
        if self.wave is not None:
            name, truth = WAVE_FIGURES[self.mode]
            plot_waves(run.folder / name, {self.cell: self.wave}, truth, f"{self.label}: {self.mode}")

    def summary(self, run, backend: Backend, model: Model) -> dict[str, Any]:
        position = run.position
        return self.summarize(run.log.records, position.first_loss, position.best, position.best_epoch)

    def summarize(self, records: Sequence[Mapping[str, Any]], first_loss: Optional[float], best: Optional[float],
                  best_epoch: int) -> dict[str, Any]:
        """The run's figures from its records: first step's loss, final loss, the last evaluation."""
        epochs = [r for r in records if r.get("kind") == "epoch"]
        steps = [r["loss"] for r in records if r.get("kind") == "step"]
        evaluated = [r for r in epochs if r.get(self.monitor) is not None] or [{}]
        return {"cell": self.cell, "epochs": epochs[-1]["epoch"],
                "first_loss": first_loss,
                "final_loss": float(np.mean(steps[-FINAL_STEPS:])) if steps else epochs[-1]["train_loss"],
                self.monitor: evaluated[-1].get(self.monitor), f"best_{self.monitor}": best,
                "best_epoch": best_epoch}

