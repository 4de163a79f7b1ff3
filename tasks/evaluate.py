"""Evaluate a language-model checkpoint on any backend, whichever backend wrote it.

Usage: python -m tasks.evaluate --checkpoint runs/char_lm/mxnet-rnn-concise/model.safetensors --backend torch
       python -m tasks.evaluate --checkpoint runs/char_lm/torch-lstm-concise/version_0 --best

Rebuilds the validation split recorded in the checkpoint, encodes it with the checkpoint's
vocabulary, and prints the validation perplexity and text continued from the prefixes. Batch
size and time steps default to the run's own, so the figure is the one the run logged.

Nothing is measured unless everything matches: the corpus's bytes (the SHA-256 the checkpoint
recorded), the vocabulary (rebuilt from the corpus, in the same order) and the width of the
weights; the flags and the prefixes are checked before a framework loads. Nothing is written.
"""
from __future__ import annotations

import json
from typing import Optional, Sequence

from seqcore.backend import BACKENDS, Device
from seqcore.jobs.evaluate import DEFAULT_PREFIXES, evaluate_checkpoint

from .cli import BACKEND_DEFAULT, Parser, add_version, choices, default_backend, run_main


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = Parser(prog="python -m tasks.evaluate", description=__doc__.split("\n\n")[0])
    add_version(parser)
    parser.add_argument("--checkpoint", required=True,
                        help="a .safetensors written by a task, or a run folder (its model.safetensors)")
    parser.add_argument("--best", action="store_true",
                        help="with a run folder: its best.safetensors (best validation) instead")
    parser.add_argument("--backend", choices=BACKENDS, default=None, help=f"framework (default: {BACKEND_DEFAULT})")
    parser.add_argument("--device", choices=choices(Device), default="auto")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="sequences per evaluation batch (default: the run's)")
    parser.add_argument("--num-steps", type=int, default=None, help="time steps per batch (default: the run's)")
    parser.add_argument("--prefix", action="append", dest="prefixes", default=None, metavar="TEXT",
                        help="text to continue; repeatable (default: %r)" % DEFAULT_PREFIXES[0])
    parser.add_argument("--num-preds", type=int, default=50, help="tokens generated per prefix (default: 50)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    args.backend = args.backend or default_backend()
    result = evaluate_checkpoint(checkpoint=args.checkpoint, backend=args.backend, device=args.device,
                 batch_size=args.batch_size, num_steps=args.num_steps,
                 prefixes=DEFAULT_PREFIXES if args.prefixes is None else args.prefixes,
                 num_preds=args.num_preds, best=args.best)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['checkpoint']} (written by {result['written_by']}, epoch {result['epoch']}) on "
              f"{args.backend} {result['device']}: validation perplexity {result['val_ppl']:.4f} "
              f"({result['num_val_tokens']:,} tokens, batch {result['batch_size']}, {result['num_steps']} steps)")
        for prefix, text in result["samples"].items():
            print(f"{prefix!r} -> {text!r}")
    return 0


if __name__ == "__main__":
    run_main(main)
