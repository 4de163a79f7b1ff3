"""MNIST as sequences: each 28 x 28 image is 28 time steps of one 28-pixel row, and the output
layer reads the last step's hidden state (many-to-one), on either framework.

Usage: python -m tasks.mnist_rows --preset seed000 --backend torch --data-dir ../shared/data/mnist

--dataset: mnist (default), fashion-mnist, kmnist (each checked against its published MD5s,
downloaded into $SEQCORE_CACHE/NAME when missing), or idx: the four IDX files in --data-dir
(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte,
.gz or raw), of any image size and number of classes, checked for format and consistency only
(the run records the data as unverified). An image of R rows of C pixels is R time steps of input
size C, on any data set; the presets keep their model and training settings.

Presets: seed000 (LSTM 64, batch 64, Adam 0.01, 1 epoch), seed003 (tanh RNN, 2 layers of 128,
batch 100, Adam 0.001, 2 epochs), best (LSTM 128, batch 64, Adam 0.003 decayed by a cosine to 1%,
clip 1, 5 epochs).
Any flag overrides the preset. --bidirectional adds a second direction that reads the rows from
the bottom up; the output layer then reads the forward direction's state after the last row and
the reverse direction's after the first (both final states). --dropout P drops inputs while
training only. Writes config.json, metrics.jsonl, metrics.csv, loss.png,
accuracy.png, confusion.png, digits.png, model.safetensors and best.safetensors (best test
accuracy) to --out (default: the next runs/mnist_rows/BACKEND-PRESET/version_N).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

from seqcore.backend import Optimizer, load_backend
from seqcore.data import mnist, mnist_sets
from seqcore.data.mnist_sets import class_names, figure_names  # noqa: F401  (the task's names for them)
from seqcore.data.sampling import Sampler
from seqcore.data.spec import MnistSpec
from seqcore.errors import ConfigError
from seqcore.jobs.classify import ClassifierJob, plot_digits
from seqcore.model.spec import Cell, Impl, InputKind, ModelSpec, Readout
from seqcore.run.session import Run
from seqcore.train.spec import Schedule, TrainSpec

from .cli import TaskConfig, batch_size_option, choices, option, parse_config, run_main

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
    cell: Optional[str] = option(None, "recurrent cell", group="model", choices=choices(Cell))
    impl: Optional[str] = option(None, "scratch: cell equations written out; concise: the framework's layer",
                                 group="model", choices=choices(Impl))
    hidden_size: Optional[int] = option(None, "hidden units per layer", group="model", check="positive")
    num_layers: Optional[int] = option(None, "stacked recurrent layers", group="model", check="positive")
    epochs: Optional[int] = option(None, "train to this epoch (with --resume: continue to it)",
                                   check="positive", resumable=True)
    batch_size: Optional[int] = batch_size_option(None, "images per batch")
    lr: Optional[float] = option(None, "learning rate", check="positive")
    optimizer: Optional[str] = option(None, "", choices=choices(Optimizer))
    clip: Optional[float] = option(None, "clip gradients to this global norm; 0 turns it off",
                                   check="non_negative")
    schedule: Optional[str] = option(None, "learning rate over the run: constant, cosine (to 1%), step, plateau",
                                     choices=choices(Schedule))
    dataset: str = option("mnist", "the data set in MNIST's format; idx: any four IDX files in --data-dir, "
                          "unverified", group="data", choices=tuple(mnist_sets.DATASETS))
    data_dir: Optional[str] = option(None, "folder with the four IDX files, gzip or raw (default: the "
                                     "download cache, $SEQCORE_CACHE/DATASET; needed for --dataset idx)",
                                     group="data", resumable=True)
    limit_train: int = option(0, "train on the first N images only; 0: all", group="data", check="non_negative")
    limit_test: int = option(0, "test on the first N images only; 0: all", group="data", check="non_negative")
    log_every: int = option(0, "steps per training-loss line in metrics.jsonl; 0: about 50 per epoch",
                            group="output", check="non_negative", resumable=True)

    def __post_init__(self) -> None:
        if not isinstance(self.preset, str) or self.preset not in PRESETS:
            raise ConfigError(f"--preset must be one of {', '.join(PRESETS)}, got {self.preset!r}.")
        chosen = dataclasses.asdict(PRESETS[self.preset])
        for name, value in chosen.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        super().__post_init__()
        if self.dataset == mnist_sets.IDX.name and not self.data_dir:
            raise ConfigError("--dataset idx needs --data-dir, the folder holding the four IDX files.")

    def data_spec(self) -> MnistSpec:
        return MnistSpec(dataset=self.dataset, folder=self.data_dir, limit_train=self.limit_train,
                         limit_test=self.limit_test)

    def train_spec(self, shape: mnist.Shape) -> TrainSpec:
        return TrainSpec(batch_size=self.batch_size, num_steps=shape.rows, num_epochs=self.epochs, lr=self.lr,
                         clip=self.clip, optimizer=self.optimizer, sampler=Sampler.RANDOM, carry_state=False,
                         init=self.init, seed=self.seed, schedule=self.schedule, lr_decay=self.lr_decay,
                         lr_decay_every=self.lr_decay_every)

    def model_spec(self, shape: mnist.Shape) -> ModelSpec:
        """Input size = the image's row width; one output per class."""
        return ModelSpec(cell=self.cell, impl=self.impl, input_size=shape.columns, hidden_size=self.hidden_size,
                         output_size=shape.num_classes, num_layers=self.num_layers, input_kind=InputKind.DENSE,
                         readout=Readout.LAST, **self.model_options())


def run(config: MnistConfig) -> dict[str, Any]:
    """Train and test; returns the summary (accuracy, loss, confusion matrix, rows/s, paths).

    To resume a run from Python without repeating its settings: run(MnistConfig.resume_from(DIR,
    epochs=5)); a changed setting that would change the numbers is refused."""
    data_spec = config.data_spec()
    dataset = data_spec.data_set
    # An IDX folder is local and of unknown image size (the time steps): read it first. A named set
    # is 28 x 28 and may need a download, which waits until the output folder has been checked.
    early = data_spec.load(progress=config.progress) if dataset.image_shape is None else None
    shape = early.shape if early else mnist.Shape(*dataset.image_shape, dataset.num_classes)
    train = config.train_spec(shape)
    per_epoch = mnist.num_batches(config.limit_train or (len(early.train) if early else 60_000), train.batch_size)
    prefix = "" if dataset is mnist.MNIST else f"{dataset.name}-"
    settings = config.settings(TASK, f"{prefix}{config.backend}-{config.preset}",
                               **({} if config.log_every else {"log_every": max(1, per_epoch // 50)}))
    with Run(TASK, config.saved(), settings, train) as training:  # the folder is checked first
        data = early or data_spec.load(progress=config.progress)
        job, spec = ClassifierJob(data, train.batch_size, EVAL_BATCH), config.model_spec(data.shape)
        training.check_resumed(job, spec)  # before a framework loads
        summary = training.fit(job, load_backend(config.backend, config.compile), spec)
        if training.world.is_writer:  # rank 0 alone writes the folder
            plot_digits(settings.out / "digits.png", data.test, job.last, names=data.figure_names,
                        title=f"{config.backend} {config.preset}: {dataset.title} test images")
    return {**summary, "rows_per_s": summary["rows_per_s_last_epoch"], "out": str(settings.out)}


def main(argv: Optional[Sequence[str]] = None) -> int:
    config = parse_config(MnistConfig, TASK, argv, __doc__, defaults={
        name: FROM_PRESET for name in ("cell", "impl", "hidden_size", "num_layers", "epochs", "batch_size", "lr",
                                       "optimizer", "clip", "schedule")})
    summary = run(config)
    title = mnist_sets.get(config.dataset).title
    print(f"{title}, {summary['backend']} {config.impl} {config.cell} ({config.preset}) on {summary['device']}: "
          f"test accuracy {100 * summary['test_accuracy']:.2f}% "
          f"({summary['num_correct']:,} / {summary['num_test']:,}), test loss {summary['test_loss']:.4f}, "
          f"{summary['rows_per_s']:,.0f} rows/s (last epoch), {summary['wall_s']:.1f} s")
    print(f"written to {summary['out']}")
    return 0


if __name__ == "__main__":
    run_main(main)
