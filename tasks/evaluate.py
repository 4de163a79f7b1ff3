"""Evaluate a language-model checkpoint on any backend, whichever backend wrote it.

Usage: python -m tasks.evaluate --checkpoint runs/char_lm/mxnet-rnn-concise/model.safetensors --backend torch
       python -m tasks.evaluate --checkpoint runs/char_lm/torch-lstm-concise/version_0 --best

Rebuilds the validation split recorded in the checkpoint, encodes it with the checkpoint's
vocabulary, and prints the validation perplexity and text continued from the prefixes. Batch
size and time steps default to the run's own, so the figure is the one the run logged; sizes
given must fit the held-out text, and the output says the sizes it measured with.

Nothing is measured unless everything matches: the corpus's bytes (the SHA-256 the checkpoint
recorded), the vocabulary (rebuilt from the corpus, in the same order) and the width of the
weights; the flags and the prefixes are checked before a framework loads. Nothing is written.

A translation checkpoint (tasks.translate) is measured on the pairs it held out: the run's loss
(batches of --batch-size, default the run's), corpus BLEU and chrF of its greedy translations (and
with --beam K of beam search) and BLEU by source length; the pairs must be the ones it was trained
beside (their SHA-256) and give the same vocabularies.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Optional, Sequence

from seqcore.jobs.evaluate import DEFAULT_PREFIXES, evaluate_checkpoint
from seqcore.jobs.translation_checkpoint import evaluate_translation, is_translation
from seqcore.run.checkpoint import checkpoint_path, load_checkpoint

from .cli import (Options, backend_option, batch_size_option, device_option, num_preds_option, num_steps_option,
                  option, parse_options, prefixes_option, run_main, write_result)

PROG = "python -m tasks.evaluate"
THE_RUNS = "the run's, read as the run read its validation text"


@dataclasses.dataclass(frozen=True)
class EvaluateOptions(Options):
    checkpoint: Optional[str] = option(None, "a .safetensors written by a task, or a run folder (its "
                                       "model.safetensors)", group="checkpoint", required=True, metavar="PATH")
    best: bool = option(False, "with a run folder: its best.safetensors (best validation) instead",
                        group="checkpoint")
    backend: Optional[str] = backend_option()
    device: str = device_option()
    batch_size: Optional[int] = batch_size_option(None, "sequences per evaluation batch; must fit the held-out "
                                                  "text", group="measure", shown=THE_RUNS)
    num_steps: Optional[int] = num_steps_option(None, "time steps per batch; must fit the held-out text",
                                                group="measure", shown=THE_RUNS)
    prefixes: tuple[str, ...] = prefixes_option(DEFAULT_PREFIXES)
    num_preds: int = num_preds_option()
    beam: int = option(1, "a translation checkpoint: also beam search of this width; 1: greedy only",
                       group="measure", check="positive")
    json: bool = option(False, "print the result as one JSON object (a lost write, to a full disk or a "
                        "closed pipe, is an error)", group="output")


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_options(EvaluateOptions, PROG, argv, __doc__)
    if is_translation(load_checkpoint(checkpoint_path(options.checkpoint, options.best))):
        return translation(options)
    result = evaluate_checkpoint(checkpoint=options.checkpoint, backend=options.backend, device=options.device,
                                 batch_size=options.batch_size, num_steps=options.num_steps,
                                 prefixes=options.prefixes, num_preds=options.num_preds, best=options.best)
    if options.json:
        write_result(json.dumps(result))
    else:
        print(f"{result['checkpoint']} (written by {result['written_by']}, epoch {result['epoch']}) on "
              f"{options.backend} {result['device']}: validation perplexity {result['val_ppl']:.4f} "
              f"({result['num_val_tokens']:,} tokens, batch {result['batch_size']}, {result['num_steps']} steps)")
        for prefix, text in result["samples"].items():
            print(f"{prefix!r} -> {text!r}")
    return 0


def translation(options: EvaluateOptions) -> int:
    result = evaluate_translation(checkpoint=options.checkpoint, backend=options.backend, device=options.device,
                                  batch_size=options.batch_size, beam=options.beam, best=options.best)
    if options.json:
        write_result(json.dumps(result))
        return 0
    beam = f", beam {options.beam}: BLEU {result['bleu_beam']:.2f} (chrF {result['chrf_beam']:.2f})" \
        if options.beam > 1 else ""
    print(f"{result['checkpoint']} (written by {result['written_by']}, epoch {result['epoch']}) on {options.backend} "
          f"{result['device']}: held-out {result['loss']} loss {result['val_loss']:.4f}, BLEU {result['bleu']:.2f} "
          f"(chrF {result['chrf']:.2f}) greedy{beam}, {result['num_held_out_pairs']:,} pairs")
    for bucket in result["bleu_by_length"]:
        print(f"  sources of {bucket['lengths']} words: {bucket['count']:,} pairs, BLEU {bucket['bleu']:.2f}")
    print(f"  {result['bleu_signature']}")
    return 0


if __name__ == "__main__":
    run_main(main)
