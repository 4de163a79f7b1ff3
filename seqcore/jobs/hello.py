"""'hello' -> 'ohlol': the seed tutorial's character toy, as the run layer's Job.

One pair of equal-length strings (seqcore.data.spec.HelloSpec), each character of the source mapped
to the target's character at the same position; an epoch is one step on that one time-major sequence.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

import numpy as np

from seqcore.backend import Backend, Model
from seqcore.data.spec import Pair
from seqcore.jobs.figures import plot_curves, series
from seqcore.model.reference import cross_entropies
from seqcore.model.spec import Loss
from seqcore.train.loop import Batch


class HelloJob:
    """The run layer's Job for the one pair: an epoch is one step on it; each evaluation reads the
    string predicted after that step and its cross-entropy (eval_loss, the monitored figure)."""

    loss = Loss.CROSS_ENTROPY
    monitor, maximize = "eval_loss", False

    def __init__(self, data: Pair, num_epochs: int, label: str, title: str):
        self.data, self.num_epochs, self.label, self.title = data, num_epochs, label, title
        self.chars, self.inputs, self.targets, self.target = data.chars, data.inputs, data.targets, data.spec.target
        self.vocab: Optional[dict[str, Any]] = None  # the characters follow from the data spec

    def num_batches(self) -> int:
        return 1

    def batches(self, epoch: int, rng: np.random.Generator) -> Iterable[Batch]:
        return [(self.inputs, self.targets)]

    def evaluate(self, run, backend: Backend, model: Model, epoch: int) -> dict[str, Any]:
        logits, _ = backend.forward(model, self.inputs, backend.begin_state(model, 1))  # (T, 1, V)
        predicted = "".join(self.chars[i] for i in logits[:, 0].argmax(axis=-1))
        return {"eval_loss": float(cross_entropies(logits.astype(np.float64), self.targets).mean()),
                "predicted": predicted, "correct": predicted == self.target}

    def describe(self, record: Mapping[str, Any]) -> str:
        return (f"epoch {record['epoch']:>3}/{self.num_epochs}: loss {record['train_loss']:.4f}, "
                f"predicted {record['predicted']!r}")

    def plot(self, run) -> None:
        plot_curves(run.folder / "loss.png", {self.label: series(run.log.of_kind("epoch"), "epoch", "train_loss")},
                    title=self.title, xlabel="epoch", ylabel="cross-entropy", logy=True)

    def summary(self, run, backend: Backend, model: Model) -> dict[str, Any]:
        epochs = run.log.of_kind("epoch")
        evaluated = [r for r in epochs if "predicted" in r]
        return {"epochs": epochs[-1]["epoch"], "first_loss": epochs[0]["train_loss"],
                "final_loss": epochs[-1]["train_loss"], "predicted": evaluated[-1]["predicted"],
                "first_correct_epoch": next((r["epoch"] for r in evaluated if r["correct"]), None),
                "best_eval_loss": run.position.best, "best_epoch": run.position.best_epoch}
