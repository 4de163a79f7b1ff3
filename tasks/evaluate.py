"""Evaluate a language-model checkpoint on any backend, whichever backend wrote it.

Usage: python -m tasks.evaluate --checkpoint runs/char_lm/mxnet-rnn-concise/model.safetensors --backend torch

Rebuilds the validation split recorded in the checkpoint, encodes it with the checkpoint's
vocabulary, and prints the validation perplexity and text continued from the prefixes.
"""
from __future__ import annotations

import argparse
import json
from typing import Any, Optional, Sequence

from seqcore.backend import BACKENDS, load_backend
from seqcore.checkpoint import load_checkpoint
from seqcore.corpus import load_corpus, split_train_val
from seqcore.errors import SeqcoreError
from seqcore.generate import predict
from seqcore.lm import validation_perplexity
from seqcore.specs import Device, parse_enum
from seqcore.vocab import Vocab

from .cli import choices, run_main


def run(*, checkpoint: str, backend: str, device: str = "auto", batch_size: int = 32, num_steps: int = 35,
        prefixes: Sequence[str] = ("time traveller",), num_preds: int = 50) -> dict[str, Any]:
    if batch_size <= 0 or num_steps <= 0:
        raise SeqcoreError(f"--batch-size and --num-steps must be positive, got {batch_size} and {num_steps}.")
    saved = load_checkpoint(checkpoint)
    if saved.vocab is None or "token" not in saved.progress:
        raise SeqcoreError(f"{checkpoint} is not a language-model checkpoint (it has no vocabulary).")
    vocab, token = Vocab.from_dict(saved.vocab), saved.progress["token"]
    corpus = saved.progress.get("corpus")
    tokens = load_corpus(None if corpus == "timemachine" else corpus, token, saved.progress.get("corpus_hash"))
    _, val = split_train_val(tokens, saved.progress["val_fraction"], saved.progress["max_tokens"])

    framework = load_backend(backend)
    where = framework.resolve_device(parse_enum(Device, device, "device"))
    model = framework.build_model(saved.model_spec, saved.params, where)
    return {
        "checkpoint": checkpoint, "written_by": saved.progress.get("backend"), "backend": backend,
        "epoch": saved.progress.get("epoch"),
        "val_ppl": validation_perplexity(framework, model, vocab.encode(val), batch_size, num_steps),
        "samples": {p: predict(framework, model, vocab, p, num_preds, token) for p in prefixes},
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a model.safetensors written by a task")
    parser.add_argument("--backend", choices=BACKENDS, default="mxnet")
    parser.add_argument("--device", choices=choices(Device), default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-steps", type=int, default=35)
    parser.add_argument("--prefix", action="append", dest="prefixes", default=None)
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    result = run(checkpoint=args.checkpoint, backend=args.backend, device=args.device,
                 batch_size=args.batch_size, num_steps=args.num_steps,
                 prefixes=args.prefixes or ("time traveller",))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.checkpoint} (written by {result['written_by']}, epoch {result['epoch']}) on "
              f"{args.backend}: validation perplexity {result['val_ppl']:.4f}")
        for prefix, text in result["samples"].items():
            print(f"{prefix!r} -> {text!r}")
    return 0


if __name__ == "__main__":
    run_main(main)
