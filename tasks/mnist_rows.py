"""MNIST as sequences: each 28 x 28 image is 28 time steps of one 28-pixel row, and the output
layer reads the last step's hidden state (many-to-one), on either framework.

Usage: python -m tasks.mnist_rows --preset seed000 --backend torch --data-dir ../shared/data/mnist

Presets: seed000 (LSTM 64, batch 64, Adam 0.01, 1 epoch), seed003 (tanh RNN, 2 layers of 128,
batch 100, Adam 0.001, 2 epochs), best (LSTM 128, batch 64, Adam 0.003 decayed by a cosine to 1%,
clip 1, 5 epochs).
Any flag overrides the preset. Writes metrics.jsonl, loss.png, accuracy.png, confusion.png,
digits.png and model.safetensors to --out.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from seqcore import mnist
from seqcore.backend import load_backend
from seqcore.classify import SCHEDULES, ClassifierRun, Evaluation, train_classifier
from seqcore.errors import SeqcoreError
from seqcore.params import init_params
from seqcore.reports import machine_info
from seqcore.specs import Device, InputKind, ModelSpec, Readout, Sampler, TrainSpec, parse_enum

from .cli import add_model_arguments, add_training_arguments, run_main

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


def run(*, preset: str = "seed000", backend: str = "mxnet", cell: Optional[str] = None,
        impl: Optional[str] = None, device: str = "auto", hidden_size: Optional[int] = None,
        num_layers: Optional[int] = None, epochs: Optional[int] = None, batch_size: Optional[int] = None,
        lr: Optional[float] = None, optimizer: Optional[str] = None, clip: Optional[float] = None,
        schedule: Optional[str] = None, init: str = "uniform", seed: int = 0,
        data_dir: Optional[str] = None, limit_train: Optional[int] = None,
        limit_test: Optional[int] = None, out: str | Path | None = None, progress: bool = True,
        log_every: int = 0) -> dict[str, Any]:
    """Train and test; returns the summary (accuracy, loss, confusion matrix, rows/s, paths).

    Arguments left at None take the preset's value.
    """
    if preset not in PRESETS:
        raise SeqcoreError(f"Unknown preset {preset!r}: choose one of {', '.join(PRESETS)}.")
    chosen = PRESETS[preset]
    schedule = pick(schedule, chosen.schedule)
    if schedule not in SCHEDULES:
        raise SeqcoreError(f"Unknown schedule {schedule!r}: choose one of {', '.join(SCHEDULES)}.")
    spec = ModelSpec(cell=pick(cell, chosen.cell), impl=pick(impl, chosen.impl), input_size=mnist.COLUMNS,
                     hidden_size=pick(hidden_size, chosen.hidden_size), output_size=mnist.NUM_CLASSES,
                     num_layers=pick(num_layers, chosen.num_layers), input_kind=InputKind.DENSE,
                     readout=Readout.LAST)
    train = TrainSpec(batch_size=pick(batch_size, chosen.batch_size), num_steps=mnist.ROWS,
                      num_epochs=pick(epochs, chosen.epochs), lr=pick(lr, chosen.lr),
                      clip=pick(clip, chosen.clip), optimizer=pick(optimizer, chosen.optimizer),
                      sampler=Sampler.RANDOM, init=init, seed=seed)
    for flag, value in (("--limit-train", limit_train), ("--limit-test", limit_test)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise SeqcoreError(f"{flag} must be a positive number of images, got {value!r}.")
    if log_every < 0:
        raise SeqcoreError(f"--log-every must not be negative, got {log_every}.")

    train_data = _limited(mnist.load_split("train", data_dir, progress=progress), limit_train, "--limit-train")
    test_data = _limited(mnist.load_split("test", data_dir, progress=progress), limit_test, "--limit-test")

    framework = load_backend(backend)
    where = framework.resolve_device(parse_enum(Device, device, "device"))
    model = framework.build_model(spec, init_params(spec, train.init, train.seed), where)
    trainer = framework.make_trainer(model, train.optimizer, train.lr)
    info = {"backend": backend, "device": where, "preset": preset,
            "num_train": len(train_data), "num_test": len(test_data),
            "data_dir": str(mnist.data_folder(data_dir)), "machine": machine_info(framework.versions())}
    plan = ClassifierRun(
        train_batches=lambda rng: mnist.row_batches(train_data, train.batch_size, rng),
        num_train_batches=mnist.num_batches(len(train_data), train.batch_size),
        test_batches=lambda: mnist.row_batches(test_data, EVAL_BATCH),
        schedule=schedule, log_every=log_every, progress=progress)
    out = Path(out or f"runs/mnist_rows/{backend}-{preset}")
    summary, test = train_classifier(framework, model, trainer, spec, train, plan, out, info)
    plot_digits(out / "digits.png", test_data, test, title=f"{backend} {preset}: test digits")
    return {**summary, "rows_per_s": summary["rows_per_s_last_epoch"], "out": str(out)}


def pick(value: Any, default: Any) -> Any:
    """A run() argument, or the preset's value where it was left at None."""
    return default if value is None else value


def _limited(data: mnist.MnistSplit, limit: Optional[int], flag: str) -> mnist.MnistSplit:
    if limit is not None and limit > len(data):
        raise SeqcoreError(f"{flag} {limit:,} is more than the {len(data):,} images available.")
    return data.head(limit)


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


def build_parser(preset: Preset) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasks.mnist_rows", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=tuple(PRESETS), default="seed000",
                        help="defaults for the flags below (default: %(default)s)")
    add_model_arguments(parser, cell=preset.cell, impl=preset.impl, hidden_size=preset.hidden_size,
                        num_layers=preset.num_layers)
    training = add_training_arguments(parser, epochs=preset.epochs, batch_size=preset.batch_size,
                                      lr=preset.lr, optimizer=preset.optimizer, clip=preset.clip)
    training.add_argument("--schedule", choices=SCHEDULES, default=preset.schedule,
                          help="learning rate over the run (default: %(default)s)")
    data = parser.add_argument_group("data")
    data.add_argument("--data-dir", default=None,
                      help="folder with the four MNIST IDX files, gzip or raw "
                           "(default: the download cache, $SEQCORE_CACHE/mnist)")
    data.add_argument("--limit-train", type=int, default=None, help="train on the first N images only")
    data.add_argument("--limit-test", type=int, default=None, help="test on the first N images only")
    report = parser.add_argument_group("output")
    report.add_argument("--log-every", type=int, default=0,
                        help="steps per training-loss line in metrics.jsonl; 0: about 50 per epoch")
    report.add_argument("--out", default=None, help="output directory (default: runs/mnist_rows/BACKEND-PRESET)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    # Two passes: the preset first, so that its values are the defaults (and the --help) of the rest.
    first = argparse.ArgumentParser(add_help=False)
    first.add_argument("--preset", default="seed000")
    name = first.parse_known_args(argv)[0].preset
    args = build_parser(PRESETS.get(name, PRESETS["seed000"])).parse_args(argv)
    summary = run(preset=args.preset, backend=args.backend, cell=args.cell, impl=args.impl,
                  device=args.device, hidden_size=args.hidden_size, num_layers=args.num_layers,
                  epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                  clip=args.clip, schedule=args.schedule, init=args.init, seed=args.seed,
                  data_dir=args.data_dir, limit_train=args.limit_train, limit_test=args.limit_test,
                  out=args.out, progress=not args.no_progress, log_every=args.log_every)
    print(f"{summary['backend']} {args.impl} {args.cell} ({args.preset}) on {summary['device']}: "
          f"test accuracy {100 * summary['test_accuracy']:.2f}% "
          f"({summary['num_correct']:,} / {summary['num_test']:,}), test loss {summary['test_loss']:.4f}, "
          f"{summary['rows_per_s']:,.0f} rows/s (last epoch), {summary['wall_s']:.1f} s")
    print(f"metrics, loss.png, accuracy.png, confusion.png, digits.png and model.safetensors "
          f"written to {summary['out']}")
    return 0


if __name__ == "__main__":
    run_main(main)
