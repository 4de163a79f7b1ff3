"""Many-to-one sequence classification: test accuracy, the confusion matrix, and the Job that the
run layer (seqcore.run) trains."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from seqcore.backend import Backend, Model
from seqcore.data import mnist
from seqcore.data.mnist import MnistSplit
from seqcore.data.spec import Images
from seqcore.jobs.figures import plot_curves, series
from seqcore.model.reference import cross_entropies
from seqcore.model.spec import Loss
from seqcore.train.loop import Batch


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


class ClassifierJob:
    """The run layer's Job for many-to-one classification of images read row by row: shuffled
    batches, test loss and accuracy after every epoch (accuracy is the monitored figure), curves and
    a confusion matrix. Batches are NumPy, time-major inputs and (N,) class ids, the same for both
    backends."""

    loss = Loss.CROSS_ENTROPY
    monitor, maximize = "test_accuracy", True

    def __init__(self, data: Images, batch_size: int, eval_batch: int):
        self.data, self.batch_size, self.eval_batch = data, batch_size, eval_batch
        self.class_names = list(data.figure_names)
        self.vocab = None
        self.last: Optional[Evaluation] = None  # the latest test evaluation (confusion matrix, figures)

    def train_batches(self, rng: np.random.Generator) -> Iterable[Batch]:
        return mnist.row_batches(self.data.train, self.batch_size, rng)

    def test_batches(self) -> Iterable[Batch]:
        return mnist.row_batches(self.data.test, self.eval_batch)

    def num_batches(self) -> int:
        return mnist.num_batches(len(self.data.train), self.batch_size)

    def batches(self, epoch: int, rng: np.random.Generator) -> Iterable[Batch]:
        return self.train_batches(rng)

    def evaluate(self, run, backend: Backend, model: Model, epoch: int) -> dict[str, Any]:
        self.last = evaluate_classifier(backend, model, self.test_batches())
        return {"test_loss": self.last.loss, "test_accuracy": self.last.accuracy}

    def describe(self, record: Mapping[str, Any]) -> str:
        return (f"epoch {record['epoch']}: train loss {record['train_loss']:.4f}, test loss "
                f"{record['test_loss']:.4f}, test accuracy {100 * record['test_accuracy']:.2f}%, "
                f"{record['tokens_per_s']:,.0f} rows/s")

    def title(self, run) -> str:
        return f"{run.backend_name} {run.spec.impl.value} {run.spec.cell.value}"

    def plot(self, run) -> None:
        epochs, title = run.log.of_kind("epoch"), self.title(run)
        plot_curves(run.folder / "loss.png", {
            "train (batch means)": series(run.log.of_kind("step"), "x", "loss"),
            "test": series(epochs, "epoch", "test_loss")},
            title=f"{title}: cross-entropy", xlabel="epoch", ylabel="loss", logy=True)
        plot_curves(run.folder / "accuracy.png", {"test": series(epochs, "epoch", "test_accuracy")},
                    title=f"{title}: test accuracy", xlabel="epoch", ylabel="accuracy")
        if self.last is not None:
            plot_confusion(run.folder / "confusion.png", self.matrix(run), class_names=self.class_names,
                           title=f"{title}: confusion matrix ({100 * self.last.accuracy:.2f}% correct)")

    def matrix(self, run) -> np.ndarray:
        return confusion_matrix(self.last.labels, self.last.predictions, run.spec.output_size)

    def summary(self, run, backend: Backend, model: Model) -> dict[str, Any]:
        last, test = run.log.of_kind("epoch")[-1], self.last
        if test is None:  # resumed after the last evaluation: evaluate the final weights again
            test = self.last = evaluate_classifier(backend, model, self.test_batches())
        return {"epochs": last["epoch"], "train_loss": last["train_loss"], "test_loss": test.loss,
                "test_accuracy": test.accuracy, "best_test_accuracy": run.position.best,
                "best_epoch": run.position.best_epoch,
                "num_correct": int((test.predictions == test.labels).sum()), "num_test": len(test.labels),
                "rows_per_s_last_epoch": last["tokens_per_s"], "confusion": self.matrix(run).tolist()}


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
    if max(len(name) for name in names) > 3:  # words (Fashion-MNIST), not digits: slant them to fit
        axes.tick_params(axis="x", labelrotation=45)
        for label in axes.get_xticklabels():
            label.set_horizontalalignment("right")
    axes.tick_params(labelsize=7 if size > 10 else 8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_digits(path: Path, data: MnistSplit, test: Evaluation, *, title: str,
                names: Optional[Sequence[str]] = None, num_first: int = 24, num_wrong: int = 24) -> Path:
    """The first test images, then the first misclassified ones; 'p' predicted, 't' true (class
    names when given, else numbers), errors in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    named = names is not None and list(names) != [str(label) for label in range(len(names))]
    wrong = np.flatnonzero(test.predictions != test.labels)[:num_wrong]
    shown = np.concatenate([np.arange(min(num_first, len(data))), wrong])
    columns = 8
    rows = max(1, -(-len(shown) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * (1.5 if named else 1.3) + 0.5), dpi=120,
                                squeeze=False)
    for slot, axis in enumerate(axes.flat):
        axis.axis("off")
        if slot < len(shown):
            index = shown[slot]
            predicted, true = int(test.predictions[index]), int(test.labels[index])
            axis.imshow(data.images[index], cmap="gray_r")
            axis.set_title(f"p {names[predicted]}\nt {names[true]}" if named else f"p {predicted} / t {true}",
                           fontsize=7 if named else 8, color="black" if predicted == true else "red")
    figure.suptitle(f"{title} (first {min(num_first, len(data))}, then {len(wrong)} errors)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
