"""MNIST as sequences: each 28 x 28 image is 28 time steps of one 28-pixel row, and the output
layer reads the last step's hidden state (many-to-one), on either framework.

Usage: python -m tasks.mnist_rows --preset seed000 --backend torch --data-dir ../shared/data/mnist

Presets: seed000 (LSTM 64, batch 64, Adam 0.01, 1 epoch), seed003 (tanh RNN, 2 layers of 128,
batch 100, Adam 0.001, 2 epochs), best (LSTM 128, batch 64, Adam 0.003 decayed by a cosine to 1%,
clip 1, 5 epochs).
Any flag overrides the preset. Writes config.json, metrics.jsonl, metrics.csv, loss.png,
accuracy.png, confusion.png, digits.png, model.safetensors and best.safetensors (best test
accuracy) to --out (default: the next runs/mnist_rows/BACKEND-PRESET/version_N).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from seqcore import mnist
from seqcore.backend import load_backend
from seqcore.classify import ClassifierJob, Evaluation
from seqcore.errors import SeqcoreError
from seqcore.run import Run
from seqcore.specs import (Cell, Device, Impl, InputKind, ModelSpec, Optimizer, Readout, Sampler, Schedule,
                           TrainSpec, parse_enum)

from .cli import TaskConfig, choices, option, parse_config, run_main

TASK = "mnist_rows"
EVAL_BATCH = 1000  # test images per forward pass; changes no result


@dataclasses.dataclass(frozen=True)
class Preset:
    cell: str
    hidden_size: int
    num_layers: int
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    clip: float  # 0: no clipping, as in the seed scripts
    schedule: str = "constant"
    impl: str = "concise"


PRESETS = {
    "seed000": Preset("lstm", 64, 1, epochs=1, batch_size=64, lr=0.01, optimizer="adam", clip=0.0),
    "seed003": Preset("rnn", 128, 2, epochs=2, batch_size=100, lr=0.001, optimizer="adam", clip=0.0),
    "best": Preset("lstm", 128, 1, epochs=5, batch_size=64, lr=0.003, optimizer="adam", clip=1.0,
                   schedule="cosine"),
}
FROM_PRESET = "the preset's"


@dataclasses.dataclass(frozen=True)
class MnistConfig(TaskConfig):
    """Fields left at None take the preset's value."""

    preset: str = option("seed000", "defaults for the model and training flags", group="model",
                         choices=tuple(PRESETS))
    cell: Optional[str] = option(None, "recurrent cell", group="model", choices=choices(Cell), kind=str)
    impl: Optional[str] = option(None, "scratch: cell equations written out; concise: the framework's layer",
                                 group="model", choices=choices(Impl), kind=str)
    hidden_size: Optional[int] = option(None, "hidden units per layer", group="model", check="positive", kind=int)
    num_layers: Optional[int] = option(None, "stacked recurrent layers", group="model", check="positive", kind=int)
    epochs: Optional[int] = option(None, "train to this epoch (with --resume: continue to it)",
                                   check="positive", kind=int, resumable=True)
    batch_size: Optional[int] = option(None, "images per batch", check="positive", kind=int)
    lr: Optional[float] = option(None, "learning rate", check="positive", kind=float)
    optimizer: Optional[str] = option(None, "", choices=choices(Optimizer), kind=str)
    clip: Optional[float] = option(None, "clip gradients to this global norm; 0 turns it off",
                                   check="non_negative", kind=float)
    schedule: Optional[str] = option(None, "learning rate over the run: constant, cosine (to 1%), step, plateau",
                                     choices=choices(Schedule), kind=str)
    data_dir: Optional[str] = option(None, "folder with the four MNIST IDX files, gzip or raw (default: the "
                                     "download cache, $SEQCORE_CACHE/mnist)", group="data", kind=str)
    limit_train: int = option(0, "train on the first N images only; 0: all", group="data", check="non_negative")
    limit_test: int = option(0, "test on the first N images only; 0: all", group="data", check="non_negative")
    log_every: int = option(0, "steps per training-loss line in metrics.jsonl; 0: about 50 per epoch",
                            group="output", check="non_negative", resumable=True)

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise SeqcoreError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}.")
        chosen = dataclasses.asdict(PRESETS[self.preset])
        for name, value in chosen.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        super().__post_init__()

    def train_spec(self) -> TrainSpec:
        return TrainSpec(batch_size=self.batch_size, num_steps=mnist.ROWS, num_epochs=self.epochs, lr=self.lr,
                         clip=self.clip, optimizer=self.optimizer, sampler=Sampler.RANDOM, carry_state=False,
                         init=self.init, seed=self.seed, schedule=self.schedule, lr_decay=self.lr_decay,
                         lr_decay_every=self.lr_decay_every)

    def model_spec(self) -> ModelSpec:
        return ModelSpec(cell=self.cell, impl=self.impl, input_size=mnist.COLUMNS, hidden_size=self.hidden_size,
                         output_size=mnist.NUM_CLASSES, num_layers=self.num_layers, input_kind=InputKind.DENSE,
                         readout=Readout.LAST)


def run(config: MnistConfig) -> dict[str, Any]:
    """Train and test; returns the summary (accuracy, loss, confusion matrix, rows/s, paths)."""
    train, spec = config.train_spec(), config.model_spec()
    per_epoch = mnist.num_batches(config.limit_train or 60_000, train.batch_size)
    settings = config.settings(TASK, f"{config.backend}-{config.preset}",
                               **({} if config.log_every else {"log_every": max(1, per_epoch // 50)}))
    with Run(TASK, config.saved(), settings, train) as training:  # the folder is checked first
        train_data = _limited(mnist.load_split("train", config.data_dir, progress=config.progress),
                              config.limit_train, "--limit-train")
        test_data = _limited(mnist.load_split("test", config.data_dir, progress=config.progress),
                             config.limit_test, "--limit-test")
        backend = load_backend(config.backend)
        device = backend.resolve_device(parse_enum(Device, config.device, "device"))
        info = {"backend": config.backend, "device": device, "preset": config.preset,
                "num_train": len(train_data), "num_test": len(test_data),
                "data_dir": str(mnist.data_folder(config.data_dir).resolve())}
        job = ClassifierJob(
            train_batches=lambda rng: mnist.row_batches(train_data, train.batch_size, rng),
            num_train_batches=mnist.num_batches(len(train_data), train.batch_size),
            test_batches=lambda: mnist.row_batches(test_data, EVAL_BATCH), info=info,
            fingerprint={**train_data.sha256, **test_data.sha256})
        summary = training.fit(job, backend, device, spec)
        plot_digits(settings.out / "digits.png", test_data, job.last,
                    title=f"{config.backend} {config.preset}: test digits")
    return {**summary, "rows_per_s": summary["rows_per_s_last_epoch"], "out": str(settings.out)}


def _limited(data: mnist.MnistSplit, limit: int, flag: str) -> mnist.MnistSplit:
    if limit > len(data):
        raise SeqcoreError(f"{flag} {limit:,} is more than the {len(data):,} images available.")
    return data.head(limit or None)


def plot_digits(path: Path, data: mnist.MnistSplit, test: Evaluation, *, title: str,
                num_first: int = 24, num_wrong: int = 24) -> Path:
    """The first test digits, then the first misclassified ones; 'p' predicted, 't' true, errors in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wrong = np.flatnonzero(test.predictions != test.labels)[:num_wrong]
    shown = np.concatenate([np.arange(min(num_first, len(data))), wrong])
    columns = 8
    rows = max(1, -(-len(shown) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.3 + 0.5), dpi=120,
                                squeeze=False)
    for slot, axis in enumerate(axes.flat):
        axis.axis("off")
        if slot < len(shown):
            index = shown[slot]
            predicted, true = int(test.predictions[index]), int(test.labels[index])
            axis.imshow(data.images[index], cmap="gray_r")
            axis.set_title(f"p {predicted} / t {true}", fontsize=8,
                           color="black" if predicted == true else "red")
    figure.suptitle(f"{title} (first {min(num_first, len(data))}, then {len(wrong)} errors)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = parse_config(MnistConfig, TASK, argv, __doc__, defaults={
        name: FROM_PRESET for name in ("cell", "impl", "hidden_size", "num_layers", "epochs", "batch_size", "lr",
                                       "optimizer", "clip", "schedule")})
    summary = run(config)
    print(f"{summary['backend']} {config.impl} {config.cell} ({config.preset}) on {summary['device']}: "
          f"test accuracy {100 * summary['test_accuracy']:.2f}% "
          f"({summary['num_correct']:,} / {summary['num_test']:,}), test loss {summary['test_loss']:.4f}, "
          f"{summary['rows_per_s']:,.0f} rows/s (last epoch), {summary['wall_s']:.1f} s")
    print(f"written to {summary['out']}")
    return 0


if __name__ == "__main__":
    run_main(main)
