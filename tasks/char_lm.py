"""Character (or word) language model on The Time Machine, d2l chapter 8, on either framework.

Usage: python -m tasks.char_lm --backend mxnet --cell lstm --impl concise [--epochs 500] [--out DIR]

Defaults are the d2l configuration: first 10,000 characters, batch 32, 35 steps, hidden 256,
lr 1, clip 1, 500 epochs, sequential partitioning. Writes metrics.jsonl, perplexity.png and
model.safetensors to --out.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional, Sequence

from seqcore.backend import load_backend
from seqcore.errors import SeqcoreError
from seqcore.lm import RunOptions, model_spec, prepare_data, train_language_model
from seqcore.params import init_params
from seqcore.reports import machine_info
from seqcore.specs import Device, Sampler, TrainSpec, parse_enum

from .cli import add_model_arguments, add_training_arguments, choices, run_main

PREFIXES = ("time traveller", "traveller")


def run(*, backend: str = "mxnet", cell: str = "rnn", impl: str = "concise", device: str = "auto",
        hidden_size: int = 256, num_layers: int = 1, init: str = "uniform", seed: int = 0,
        epochs: int = 500, batch_size: int = 32, num_steps: int = 35, lr: float = 1.0,
        clip: float = 1.0, optimizer: str = "sgd", sampler: str = "sequential",
        corpus: Optional[str] = None, corpus_hash: Optional[str] = None, token: str = "char", max_tokens: Optional[int] = 10_000,
        val_fraction: float = 0.1, prefixes: Sequence[str] = PREFIXES, num_preds: int = 50,
        temperature: float = 0.0,
        eval_every: int = 10, checkpoint_every: int = 10, sample_every: int = 0,
        out: str | Path = "runs/char_lm", progress: bool = True, log_steps: bool = False) -> dict[str, Any]:
    """Train and return the summary (train / validation perplexity, tokens/s, samples, paths)."""
    train = TrainSpec(batch_size=batch_size, num_steps=num_steps, num_epochs=epochs, lr=lr, clip=clip,
                      optimizer=optimizer, sampler=sampler, init=init, seed=seed)
    if max_tokens is not None and max_tokens <= 0:
        raise SeqcoreError(f"--max-tokens must be positive or 'all', got {max_tokens}.")
    data = prepare_data(corpus, token, max_tokens, val_fraction, batch_size, num_steps, corpus_hash)
    spec = model_spec(cell, impl, len(data.vocab), hidden_size, num_layers)
    for prefix in prefixes:  # fail before training, not after it
        tokens = list(prefix) if token == "char" else prefix.split()
        if data.vocab.unknown(tokens):
            unknown = ", ".join(repr(t) for t in data.vocab.unknown(tokens))
            raise SeqcoreError(f"The prefix {prefix!r} has tokens outside the vocabulary: {unknown}.")
    for name, value in (("eval-every", eval_every), ("checkpoint-every", checkpoint_every),
                        ("sample-every", sample_every), ("num-preds", num_preds), ("temperature", temperature)):
        if value < 0:
            raise SeqcoreError(f"--{name} must not be negative, got {value}.")

    framework = load_backend(backend)
    where = framework.resolve_device(parse_enum(Device, device, "device"))
    model = framework.build_model(spec, init_params(spec, train.init, train.seed), where)
    trainer = framework.make_trainer(model, train.optimizer, train.lr)
    info = {"backend": backend, "device": where, "corpus": corpus or "timemachine",
            "corpus_hash": corpus_hash, "token": token,
            "max_tokens": max_tokens, "val_fraction": val_fraction,
            "num_train_tokens": int(len(data.train_ids)), "num_val_tokens": int(len(data.val_ids)),
            "machine": machine_info(framework.versions())}
    options = RunOptions(eval_every=eval_every or epochs, checkpoint_every=checkpoint_every,
                         sample_every=sample_every, prefixes=tuple(prefixes), num_preds=num_preds,
                         temperature=temperature,
                         progress=progress, log_steps=log_steps)
    return train_language_model(framework, model, trainer, spec, train, data, Path(out), options, info)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasks.char_lm", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, cell="rnn", impl="concise", hidden_size=256)
    add_training_arguments(parser, epochs=500, batch_size=32, lr=1.0, optimizer="sgd", clip=1.0)
    data = parser.add_argument_group("data")
    data.add_argument("--num-steps", type=int, default=35, help="time steps per batch (default: %(default)s)")
    data.add_argument("--sampler", choices=choices(Sampler), default="sequential", help="(default: %(default)s)")
    data.add_argument("--corpus", default=None,
                      help="a UTF-8 text file or an http(s) URL (default: the bundled Time Machine)")
    data.add_argument("--corpus-hash", default=None,
                      help="checksum of a --corpus URL, e.g. sha256:HEX (downloads are cached and verified)")
    data.add_argument("--token", choices=("char", "word"), default="char", help="(default: %(default)s)")
    data.add_argument("--max-tokens", type=_max_tokens, default=10_000,
                      help="train on the first N tokens, or 'all' (default: %(default)s)")
    data.add_argument("--val-fraction", type=float, default=0.1,
                      help="the corpus tail held out for validation (default: %(default)s)")
    report = parser.add_argument_group("output")
    report.add_argument("--prefix", action="append", dest="prefixes", default=None,
                        help="text to continue after training; repeatable (default: %s)" % ", ".join(PREFIXES))
    report.add_argument("--num-preds", type=int, default=50, help="tokens generated per prefix (default: %(default)s)")
    report.add_argument("--temperature", type=float, default=0.0,
                        help="0 picks the likeliest token (greedy); above 0 samples, seeded (default: 0)")
    report.add_argument("--eval-every", type=int, default=10, help="epochs between validation passes (default: %(default)s)")
    report.add_argument("--checkpoint-every", type=int, default=10, help="(default: %(default)s)")
    report.add_argument("--sample-every", type=int, default=0, help="epochs between text samples, 0 for none")
    report.add_argument("--log-steps", action="store_true", help="write every batch's loss to metrics.jsonl")
    report.add_argument("--out", default=None, help="output directory (default: runs/char_lm/BACKEND-CELL-IMPL)")
    return parser


def _max_tokens(text: str) -> Optional[int]:
    if text == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of tokens or 'all', got {text!r}") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    out = args.out or f"runs/char_lm/{args.backend}-{args.cell}-{args.impl}"
    summary = run(backend=args.backend, cell=args.cell, impl=args.impl, device=args.device,
                  hidden_size=args.hidden_size, num_layers=args.num_layers, init=args.init, seed=args.seed,
                  epochs=args.epochs, batch_size=args.batch_size, num_steps=args.num_steps, lr=args.lr,
                  clip=args.clip, optimizer=args.optimizer, sampler=args.sampler, corpus=args.corpus,
                  corpus_hash=args.corpus_hash, temperature=args.temperature,
                  token=args.token, max_tokens=args.max_tokens, val_fraction=args.val_fraction,
                  prefixes=args.prefixes or PREFIXES, num_preds=args.num_preds, eval_every=args.eval_every,
                  checkpoint_every=args.checkpoint_every, sample_every=args.sample_every, out=out,
                  progress=not args.no_progress, log_steps=args.log_steps)
    print(f"{summary['backend']} {args.impl} {args.cell} on {summary['device']}: "
          f"train perplexity {summary['train_ppl']:.3f}, validation perplexity {summary['val_ppl']:.3f}, "
          f"{summary['tokens_per_s_last_epoch']:,.0f} tokens/s (last epoch), {summary['wall_s']:.1f} s")
    for prefix, text in summary["samples"].items():
        print(f"{prefix!r} -> {text!r}")
    print(f"metrics, perplexity.png and model.safetensors written to {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
