"""'hello' -> 'ohlol': the seed tutorial's character seq2seq toy, on either framework.

Usage: python -m tasks.hello --backend torch --impl scratch [--variant embedding] [--out DIR]

Each character of --source is mapped to the character of --target at the same position. The
vocabulary is the sorted set of their characters ('ehlo', as in the seed). --impl scratch steps
the cell in a Python loop over the characters (the seed's RNNCell version); --impl concise hands
the whole sequence to the framework's layer (the seed's RNN version). --variant onehot: one-hot
characters, hidden 4, lr 0.1; --variant embedding: an embedding table of width 10, two layers of
hidden 8, lr 0.05 (the seed's Embedding version). Both variants end in a linear output layer
(the seed's one-hot versions read the hidden state as logits; seqcore models always have one).
One epoch is one Adam step on the one sequence with a fresh zero state, mean cross-entropy over
the characters (the seed sums); 20 epochs (the seed ran 15, which LSTM needs all of). Every epoch
prints that step's loss and the string predicted after it; writes metrics.jsonl, loss.png and
model.safetensors to --out.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from seqcore.backend import load_backend
from seqcore.checkpoint import Checkpoint, save_checkpoint
from seqcore.errors import SeqcoreError
from seqcore.params import init_params
from seqcore.progress import Progress
from seqcore.reports import MetricsWriter, machine_info, plot_curves, read_metrics, series
from seqcore.specs import Device, InputKind, Loss, ModelSpec, Readout, Sampler, TrainSpec, parse_enum
from seqcore.training import NonFiniteLoss, train_epoch

from .cli import add_model_arguments, add_training_arguments, run_main

VARIANTS = {  # the seed's sizes per version
    "onehot": {"hidden_size": 4, "num_layers": 1, "embed_size": 0, "lr": 0.1},
    "embedding": {"hidden_size": 8, "num_layers": 2, "embed_size": 10, "lr": 0.05},
}


def encode_pair(source: str, target: str) -> tuple[str, np.ndarray, np.ndarray]:
    """Vocabulary and the time-major batch of one sequence: inputs (T, 1), targets (T, 1) ids."""
    if not source or len(source) != len(target):
        raise SeqcoreError(f"The source {source!r} and target {target!r} must be non-empty and of the same "
                           f"length ({len(source)} vs {len(target)}): each character maps to one character.")
    chars = "".join(sorted(set(source + target)))
    ids = {c: i for i, c in enumerate(chars)}
    return (chars, np.array([[ids[c]] for c in source], np.int64), np.array([[ids[c]] for c in target], np.int64))


def run(*, backend: str = "mxnet", cell: str = "rnn", impl: str = "scratch", variant: str = "onehot",
        device: str = "auto", hidden_size: Optional[int] = None, num_layers: Optional[int] = None,
        embed_size: Optional[int] = None, init: str = "uniform", seed: int = 0, epochs: int = 20,
        lr: Optional[float] = None, clip: float = 0.0, optimizer: str = "adam", source: str = "hello",
        target: str = "ohlol", out: str | Path = "runs/hello", progress: bool = True,
        verbose: bool = True) -> dict[str, Any]:
    """Train and return the summary (losses, predicted string, first epoch that got it right)."""
    if variant not in VARIANTS:
        raise SeqcoreError(f"Unknown variant {variant!r}: choose one of {', '.join(VARIANTS)}.")
    defaults = VARIANTS[variant]
    chars, inputs, targets = encode_pair(source, target)
    spec = ModelSpec(cell=cell, impl=impl, input_size=len(chars), output_size=len(chars),
                     hidden_size=defaults["hidden_size"] if hidden_size is None else hidden_size,
                     num_layers=defaults["num_layers"] if num_layers is None else num_layers,
                     input_kind=InputKind.ONEHOT if variant == "onehot" else InputKind.EMBEDDING,
                     embed_size=defaults["embed_size"] if embed_size is None else embed_size,
                     readout=Readout.SEQUENCE)
    train = TrainSpec(batch_size=1, num_steps=len(source), num_epochs=epochs,
                      lr=defaults["lr"] if lr is None else lr, clip=clip, optimizer=optimizer,
                      sampler=Sampler.RANDOM, init=init, seed=seed)

    framework = load_backend(backend)
    where = framework.resolve_device(parse_enum(Device, device, "device"))
    model = framework.build_model(spec, init_params(spec, train.init, train.seed), where)
    trainer = framework.make_trainer(model, train.optimizer, train.lr)
    info = {"backend": backend, "device": where, "variant": variant, "source": source, "target": target,
            "chars": chars, "machine": machine_info(framework.versions())}
    out = Path(out)
    metrics = MetricsWriter(out / "metrics.jsonl")
    metrics.write({"kind": "run", "model": spec.to_dict(), "train": train.to_dict(), **info})
    bar = Progress(epochs, f"{backend} {cell} {impl} {variant}", enabled=progress)
    started, first_correct, losses = time.perf_counter(), None, []
    try:
        for epoch in range(1, epochs + 1):
            stats = train_epoch(framework, model, trainer, [(inputs, targets)], loss=Loss.CROSS_ENTROPY,
                                clip=train.clip, carry_state=False, epoch=epoch)
            logits, _ = framework.forward(model, inputs, framework.begin_state(model, 1))  # (T, 1, V)
            predicted = "".join(chars[i] for i in logits[:, 0].argmax(axis=-1))
            if predicted == target and first_correct is None:
                first_correct = epoch
            losses.append(stats.mean_loss)
            metrics.write({"kind": "epoch", "epoch": epoch, "loss": stats.mean_loss, "predicted": predicted,
                           "elapsed_s": time.perf_counter() - started})
            bar.update(1, {"loss": stats.mean_loss})
            if verbose:
                bar.log(f"epoch {epoch:>3}/{epochs}: loss {stats.mean_loss:.4f}, predicted {predicted!r}")
    except NonFiniteLoss as error:
        raise error.explain() from None
    finally:
        bar.close()

    checkpoint = out / "model.safetensors"
    summary = {"kind": "summary", "epochs": epochs, "first_loss": losses[0], "final_loss": losses[-1],
               "predicted": predicted, "first_correct_epoch": first_correct,
               "wall_s": time.perf_counter() - started, "checkpoint": str(checkpoint), **info}
    save_checkpoint(checkpoint, Checkpoint(spec, framework.export_params(model), train, None,
                                           {k: v for k, v in summary.items() if k not in ("kind", "machine")}))
    metrics.write(summary)
    plot_curves(out / "loss.png", {variant: series(read_metrics(out / "metrics.jsonl"), "epoch", "loss")},
                title=f"{backend} {impl} {cell} ({variant}): {source!r} -> {target!r}", xlabel="epoch",
                ylabel="cross-entropy", logy=True)
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasks.hello", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    notes = {dest: "(default: %s)" % ", ".join(f"{VARIANTS[v][dest]} {v}" for v in VARIANTS)
             for dest in ("hidden_size", "num_layers")}  # defaults that depend on --variant
    add_model_arguments(parser, cell="rnn", impl="scratch", hidden_size=None, num_layers=None, notes=notes)
    add_training_arguments(parser, epochs=20, batch_size=None, lr=None, optimizer="adam", clip=0.0,
                           with_batch_size=False, notes={"lr": "(default: 0.1 onehot, 0.05 embedding)"})
    group = parser.add_argument_group("task")
    group.add_argument("--variant", choices=tuple(VARIANTS), default="onehot", help="(default: %(default)s)")
    group.add_argument("--embed-size", type=int, default=None, help="embedding variant (default: 10)")
    group.add_argument("--source", default="hello", help="(default: %(default)s)")
    group.add_argument("--target", default="ohlol", help="(default: %(default)s)")
    group.add_argument("--out", default=None, help="output directory (default: runs/hello/BACKEND-CELL-IMPL-VARIANT)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or f"runs/hello/{args.backend}-{args.cell}-{args.impl}-{args.variant}"
    summary = run(backend=args.backend, cell=args.cell, impl=args.impl, variant=args.variant, device=args.device,
                  hidden_size=args.hidden_size, num_layers=args.num_layers, embed_size=args.embed_size,
                  init=args.init, seed=args.seed, epochs=args.epochs, lr=args.lr, clip=args.clip,
                  optimizer=args.optimizer, source=args.source, target=args.target, out=out,
                  progress=not args.no_progress)
    print(f"{args.backend} {args.impl} {args.cell} ({args.variant}) on {summary['device']}: loss "
          f"{summary['first_loss']:.4f} -> {summary['final_loss']:.4f}, predicted {summary['predicted']!r} "
          f"(first right at epoch {summary['first_correct_epoch']}), {summary['wall_s']:.1f} s")
    print(f"metrics, loss.png and model.safetensors written to {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
