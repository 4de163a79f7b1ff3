"""One backend's side of the report's equivalence checks, in a process of its own (one framework).

Usage (internal, started by tasks.compare): python -m tasks.crosscheck --backend torch --device cpu \
           --runs runs.json --out DIR

For every run folder listed in runs.json ([{"folder", "task", "trained_on"}]), loads its last
checkpoint into this backend and writes the logits of one forward pass over a fixed input (the
same for every backend: NumPy, seed 0; an encoder-decoder's source, lengths and decoder inputs) to
DIR/<index>.npy; for every char_lm run trained on another backend, also its validation perplexity
here (tasks.evaluate), for every translate run its held-out loss. Prints one JSON line:
{"backend", "logits": {index: file}, "cross_eval": [{"folder", "figure", "value"}], "errors": [...]}.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from seqcore.backend import Device, load_backend
from seqcore.checks import parse_enum
from seqcore.errors import SeqcoreError
from seqcore.jobs.evaluate import evaluate_checkpoint
from seqcore.jobs.translation_checkpoint import evaluate_translation
from seqcore.model.seq2seq import Seq2SeqSpec
from seqcore.model.spec import InputKind
from seqcore.run.checkpoint import load_checkpoint

from .cli import Options, backend_option, device_option, option, out_option, parse_options, run_main

INPUT_STEPS, INPUT_BATCH = 10, 2


def fixed_input(spec) -> np.ndarray:
    """The same input on every backend: token ids (T, N) or features (T, N, I); for an encoder-decoder
    (source ids (T, N), source lengths (N,), decoder input ids (T, N))."""
    rng = np.random.default_rng(0)
    if isinstance(spec, Seq2SeqSpec):
        return (rng.integers(0, spec.source_vocab_size, (INPUT_STEPS, INPUT_BATCH)).astype(np.int64),
                np.array([INPUT_STEPS, INPUT_STEPS // 2], np.int64),
                rng.integers(0, spec.target_vocab_size, (INPUT_STEPS, INPUT_BATCH)).astype(np.int64))
    if spec.input_kind is InputKind.DENSE:
        return rng.standard_normal((INPUT_STEPS, INPUT_BATCH, spec.input_size)).astype(np.float32)
    return rng.integers(0, spec.input_size, (INPUT_STEPS, INPUT_BATCH)).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class CrosscheckOptions(Options):
    backend: Optional[str] = backend_option()
    device: str = device_option("cpu")
    runs: Optional[str] = option(None, "JSON list of {folder, task, trained_on}", group="input", required=True,
                                 metavar="FILE")
    out: Optional[str] = out_option(None, "folder for the logits files", required=True)


def check(backend_name: str, device: str, runs: Sequence[dict], out: Path) -> dict[str, Any]:
    backend = load_backend(backend_name)
    where = backend.resolve_device(parse_enum(Device, device, "device"))
    out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"backend": backend_name, "device": where, "logits": {}, "cross_eval": [], "errors": []}
    for index, run in enumerate(runs):
        folder = Path(run["folder"])
        try:
            saved = load_checkpoint(folder / "model.safetensors")
            model = backend.build_model(saved.model_spec, saved.params, where)
            logits, _ = backend.forward(model, fixed_input(saved.model_spec), backend.begin_state(model, INPUT_BATCH))
            np.save(out / f"{index}.npy", np.asarray(logits, dtype=np.float32))
            result["logits"][str(index)] = f"{index}.npy"
            if run["trained_on"] == backend_name:
                continue
            if run["task"] == "char_lm":
                measured = evaluate_checkpoint(checkpoint=str(folder), backend=backend_name, device=device, num_preds=5)
                result["cross_eval"].append({"folder": str(folder), "figure": "val_ppl", "value": measured["val_ppl"]})
            elif run["task"] == "translate":
                measured = evaluate_translation(checkpoint=str(folder), backend=backend_name, device=device)
                result["cross_eval"].append({"folder": str(folder), "figure": "val_loss", "value": measured["val_loss"]})
        except SeqcoreError as error:
            result["errors"].append(f"{folder} on {backend_name}: {error}")
    return result


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_options(CrosscheckOptions, "python -m tasks.crosscheck", argv, __doc__)
    runs = json.loads(Path(options.runs).read_text())
    print(json.dumps(check(options.backend, options.device, runs, Path(options.out))))
    return 0


if __name__ == "__main__":
    run_main(main)
