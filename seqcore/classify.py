"""Many-to-one sequence classification: the epoch loop around `training.train_epoch`, with test
accuracy, a confusion matrix, an optional learning-rate schedule, metrics, checkpoints and plots.

The batches come from the caller as NumPy (time-major inputs, (N,) class ids), so both backends
see the same numbers; the schedule is decided here, in Python, and handed over with `set_lr`.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np

from .backend import Backend, Model, Trainer
from .checkpoint import Checkpoint, save_checkpoint
from .errors import SeqcoreError
from .progress import Progress
from .reference import cross_entropies
from .reports import MetricsWriter, plot_curves, read_metrics, series
from .specs import Loss, ModelSpec, TrainSpec
from .training import Batch, NonFiniteLoss, train_epoch

SCHEDULES = ("constant", "cosine")
COSINE_FLOOR = 0.01  # the cosine schedule ends at 1% of the peak learning rate


def scheduled_lr(schedule: str, lr: float, done: int, total: int) -> float:
    """Learning rate after `done` of `total` updates: constant, or cosine from lr to lr * 0.01."""
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        fraction = min(done / max(total, 1), 1.0)
        return lr * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * fraction)))
    raise SeqcoreError(f"Unknown schedule {schedule!r}: choose one of {', '.join(SCHEDULES)}.")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    loss: float  # mean cross-entropy
    predictions: np.ndarray  # (n,) int64
    labels: np.ndarray  # (n,) int64

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.predictions == self.labels))


def evaluate_classifier(backend: Backend, model: Model, batches: Iterable[Batch]) -> Evaluation:
    """One forward pass per batch without gradients: loss (float64 log-softmax) and predictions."""
    losses, predictions, labels = [], [], []
    for inputs, targets in batches:
        logits, _ = backend.forward(model, inputs, backend.begin_state(model, inputs.shape[1]))  # (N, C)
        logits = logits.astype(np.float64)
        losses.append(cross_entropies(logits, targets))
        predictions.append(logits.argmax(axis=1))
        labels.append(targets)
    return Evaluation(float(np.concatenate(losses).mean()), np.concatenate(predictions),
                      np.concatenate(labels))


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


@dataclasses.dataclass(frozen=True)
class ClassifierRun:
    train_batches: Callable[[np.random.Generator], Iterable[Batch]]  # one shuffled pass
    num_train_batches: int
    test_batches: Callable[[], Iterable[Batch]]  # the test set in a fixed order
    schedule: str = "constant"
    log_every: int = 0  # steps between training-loss lines; 0 picks about 50 per epoch
    progress: bool = True


BATCH_STREAM = 1  # the shuffling Generator is seeded with (seed, 1), the weights with seed alone


def train_classifier(backend: Backend, model: Model, trainer: Trainer, spec: ModelSpec, train: TrainSpec,
                     run: ClassifierRun, out: Path, info: dict[str, Any]) -> tuple[dict[str, Any], Evaluation]:
    """Train for `train.num_epochs`, evaluating on the test set after each epoch.

    Writes metrics.jsonl, loss.png, accuracy.png, confusion.png and model.safetensors to `out`;
    returns the summary (also the last line of metrics.jsonl) and the last test evaluation.
    """
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([train.seed, BATCH_STREAM])
    metrics = MetricsWriter(out / "metrics.jsonl")
    metrics.write({"kind": "run", "model": spec.to_dict(), "train": train.to_dict(),
                   "schedule": run.schedule, **info})
    checkpoint_path = out / "model.safetensors"
    per_epoch, total = run.num_train_batches, run.num_train_batches * train.num_epochs
    log_every = run.log_every or max(1, per_epoch // 50)
    bar = Progress(total, f"{info.get('backend', '')} {spec.cell.value} {spec.impl.value}",
                   enabled=run.progress)
    started = time.perf_counter()
    done, last_saved = 0, None
    record: dict[str, Any] = {}
    try:
        for epoch in range(1, train.num_epochs + 1):
            window: list[float] = []

            def on_step(step: int, value: float, stats) -> None:
                nonlocal done
                done += 1
                window.append(value)
                if len(window) == log_every or step == per_epoch:
                    metrics.write({"kind": "step", "epoch": epoch, "step": step,
                                   "x": epoch - 1 + step / per_epoch, "loss": float(np.mean(window)),
                                   "lr": scheduled_lr(run.schedule, train.lr, done - 1, total)})
                    window.clear()
                if run.schedule != "constant":  # the next update's rate
                    backend.set_lr(trainer, scheduled_lr(run.schedule, train.lr, done, total))
                bar.update(1, {"loss": value, "rows/s": stats.tokens_per_second})

            stats = train_epoch(backend, model, trainer, run.train_batches(rng), loss=Loss.CROSS_ENTROPY,
                                clip=train.clip, carry_state=False, epoch=epoch,
                                warmup_steps=1 if epoch == 1 else 0, on_step=on_step)
            test = evaluate_classifier(backend, model, run.test_batches())
            record = {"kind": "epoch", "epoch": epoch, "train_loss": stats.mean_loss,
                      "test_loss": test.loss, "test_accuracy": test.accuracy,
                      "rows_per_s": stats.tokens_per_second, "max_grad_norm": stats.max_grad_norm,
                      "elapsed_s": time.perf_counter() - started}
            metrics.write(record)
            bar.log(f"epoch {epoch}: train loss {stats.mean_loss:.4f}, test loss {test.loss:.4f}, "
                    f"test accuracy {100 * test.accuracy:.2f}%, {stats.tokens_per_second:,.0f} rows/s")
            save_checkpoint(checkpoint_path, Checkpoint(
                spec, backend.export_params(model), train, None,
                {"epoch": epoch, **info, **{k: v for k, v in record.items() if k != "kind"}}))
            last_saved = epoch
    except NonFiniteLoss as error:
        raise error.explain(checkpoint_path, last_saved) from None
    finally:
        bar.close()

    matrix = confusion_matrix(test.labels, test.predictions, spec.output_size)
    summary = {"kind": "summary", "epochs": train.num_epochs, "train_loss": record["train_loss"],
               "test_loss": test.loss, "test_accuracy": test.accuracy,
               "num_correct": int((test.predictions == test.labels).sum()), "num_test": len(test.labels),
               "rows_per_s_last_epoch": record["rows_per_s"], "wall_s": time.perf_counter() - started,
               "confusion": matrix.tolist(), "checkpoint": str(checkpoint_path), **info}
    metrics.write(summary)
    title = f"{info.get('backend', '')} {spec.impl.value} {spec.cell.value}"
    records = read_metrics(out / "metrics.jsonl")
    epochs = [r for r in records if r.get("kind") == "epoch"]
    plot_curves(out / "loss.png", {"train (batch means)": series(
        [r for r in records if r.get("kind") == "step"], "x", "loss"),
        "test": series(epochs, "epoch", "test_loss")},
        title=f"{title}: cross-entropy", xlabel="epoch", ylabel="loss", logy=True)
    plot_curves(out / "accuracy.png", {"test": series(epochs, "epoch", "test_accuracy")},
                title=f"{title}: test accuracy", xlabel="epoch", ylabel="accuracy")
    plot_confusion(out / "confusion.png", matrix, title=f"{title}: confusion matrix "
                   f"({100 * test.accuracy:.2f}% correct)")
    return summary, test


def plot_confusion(path: Path, matrix: np.ndarray, *, title: str,
                   class_names: Optional[list[str]] = None) -> Path:
    """Counts as a heat map with the numbers written in; rows true, columns predicted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = len(matrix)
    names = class_names or [str(i) for i in range(size)]
    figure, axes = plt.subplots(figsize=(6.4, 5.6), dpi=120)
    shown = np.log1p(matrix)  # the diagonal dwarfs the errors on a linear scale
    axes.imshow(shown, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            dark = shown[row, column] > 0.6 * shown.max()
            axes.text(column, row, str(count), ha="center", va="center", fontsize=7,
                      color="white" if dark else "black")
    axes.set(title=title, xlabel="predicted", ylabel="true", xticks=range(size), yticks=range(size),
             xticklabels=names, yticklabels=names)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
