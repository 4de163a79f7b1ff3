"""Convert weights between a seqcore checkpoint and each framework's own format.

Usage: python -m tasks.convert --checkpoint runs/char_lm/mxnet-lstm-concise/version_0 --to torch --out lm.pt
       python -m tasks.convert --checkpoint model.safetensors --to gluon --out lm.params
       python -m tasks.convert --checkpoint model.safetensors --to onnx --out lm.onnx   # the [onnx] extra
       python -m tasks.convert --from-gluon d2l_lm.params --vocab vocab.json --out lm.safetensors
       python -m tasks.convert --from-torch model.pt --input dense --readout last --out model.safetensors

Export (--checkpoint, a .safetensors file or a run folder): a PyTorch state_dict (`torch.save`),
a Gluon `.params` file (what `save_parameters` writes) or an ONNX graph of the PyTorch module,
for the plain modules of the README: children `embedding` (when used), `rnn` and `head`.
Import (--from-torch / --from-gluon): such a file becomes a seqcore checkpoint. Cell, hidden
size, layers, directions, embedding and output sizes are read from the file's shapes; a flag
given for one of them is checked against the file. Not in the file: dense or one-hot input
(--input, default one-hot unless the file has an embedding), the RNN's activation (default the
framework's own: tanh for PyTorch, relu for Gluon) and the readout. With --vocab, the
checkpoint is a language model that `tasks.evaluate` measures on --corpus; a plain RNN is then also
measured with the other nonlinearity, and refused when that one fits its validation text clearly
better (the file was trained with it).

The d2l book's files, both editions, import as its readers save them (seqcore.interchange.d2l):
0.17's RNNModel and 1.0's RNNLM (`save_parameters`, `state_dict`), the scratch models' parameter
lists (`npx.save` / `torch.save` of net.params) and 1.0's RNNLMScratch (`state_dict`, or a dict or
list of its arrays), with the vocabulary as d2l's `vocab.idx_to_token` (a JSON list) or
`vocab.token_to_idx` (a JSON object). The edition the file's layout shows (or --preset) decides
the data the model is measured on: d2l 1.0's whole-text preprocessing, alphabetical vocabulary and
validation windows, or 0.17's (seqcore's own) text and its last 10%.

A translation checkpoint (tasks.translate) exports as the book's encoder-decoder in plain modules:
children encoder.{embedding, rnn} and decoder.{embedding, rnn, head} (PyTorch or Gluon; not ONNX).
A model with attention has no plain-module form (neither framework has an attention module), and
is refused in one sentence.

Each run loads one framework only (PyTorch for torch and onnx, MXNet for gluon). Nothing is
kept unless the file, loaded into the plain module, gives the NumPy reference's logits; the
file is written beside --out and renamed over it. An existing --out needs --overwrite.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from seqcore.backend import load_part
from seqcore.errors import ConfigError, SeqcoreError
from seqcore.interchange import (
    FORMATS,
    FRAMEWORK,
    check_convertible,
    describe,
    infer_spec,
    probe_inputs,
    to_canonical,
    to_foreign,
)
from seqcore.interchange.d2l import book_names, is_scratch, scratch_params
from seqcore.jobs.imported import check_lm_flags, check_scratch_flags, edition_preset, lm_data, measured
from seqcore.jobs.presets import PRESETS
from seqcore.model import reference, seq2seq_reference
from seqcore.model.seq2seq import Seq2SeqSpec
from seqcore.model.params import Params
from seqcore.model.spec import Activation, Cell, InputKind, ModelSpec, Readout
from seqcore.run.checkpoint import Checkpoint, atomic_write, checkpoint_path, load_checkpoint, save_checkpoint

from .cli import Options, choices, flag as flag_name, option, out_option, overwrite_option, parse_options, run_main

TARGETS = (*FORMATS, "onnx")
TOLERANCE = 1e-4  # relative to the largest logit: float32 frameworks against the float64 reference
WHAT = {"torch": "a PyTorch state_dict", "gluon": "a Gluon .params file", "onnx": "an ONNX graph"}
IMPORT_FLAGS = ("cell", "hidden_size", "num_layers", "bidirectional", "input", "activation", "readout",
                "vocab", "corpus", "token", "max_tokens", "val_fraction", "preset")
IMPORT = "import (each is read from the file's shapes when left out, and checked against it when given)"
SOURCES = ("checkpoint", "from_torch", "from_gluon")


@dataclasses.dataclass(frozen=True)
class ConvertOptions(Options):
    """Export (--checkpoint, --to) or import (--from-torch / --from-gluon and what the file cannot say)."""

    checkpoint: Optional[str] = option(None, "export: a .safetensors checkpoint or a run folder", group="source",
                                       metavar="PATH")
    from_torch: Optional[str] = option(None, "import: a PyTorch state_dict file (torch.save)", group="source",
                                       metavar="FILE")
    from_gluon: Optional[str] = option(None, "import: a Gluon .params file (save_parameters)", group="source",
                                       metavar="FILE")
    to: Optional[str] = option(None, "export format (with --checkpoint)", group="source", choices=TARGETS)
    out: Optional[str] = out_option(None, "the file to write", required=True, metavar="FILE")
    overwrite: bool = overwrite_option("replace --out if it exists")
    cell: Optional[str] = option(None, "", group=IMPORT, choices=choices(Cell))
    hidden_size: Optional[int] = option(None, "", group=IMPORT, check="positive")
    num_layers: Optional[int] = option(None, "", group=IMPORT, check="positive")
    bidirectional: Optional[bool] = option(None, "", group=IMPORT)
    input: Optional[str] = option(None, "default: embedding when the file has embedding.weight, else onehot",
                                  group=IMPORT, choices=choices(InputKind))
    activation: Optional[str] = option(None, "an RNN's nonlinearity (default: tanh for --from-torch, relu for "
                                       "--from-gluon, each framework's default)", group=IMPORT,
                                       choices=choices(Activation))
    readout: str = option(Readout.SEQUENCE.value, "the head reads every step (sequence) or the last one",
                          group=IMPORT, choices=choices(Readout))
    vocab: Optional[str] = option(None, "a language model's vocabulary: a JSON list of tokens in index order "
                                  "(d2l's vocab.idx_to_token), a JSON object token -> index (its token_to_idx) "
                                  "or a seqcore vocabulary", group=IMPORT, metavar="FILE")
    corpus: Optional[str] = option(None, "with --vocab: the text tasks.evaluate measures on (default: the "
                                   "bundled Time Machine)", group=IMPORT, metavar="FILE")
    preset: Optional[str] = option(None, "with --vocab: the book edition whose data the model was trained on "
                                   "(default: the one the file's layout shows, else seqcore's)", group=IMPORT,
                                   choices=PRESETS)
    token: Optional[str] = option(None, "with --vocab", group=IMPORT, choices=("char", "word"), shown="char")
    max_tokens: Optional[int] = option(None, "with --vocab: the training text's length, 0 for all", group=IMPORT,
                                       check="non_negative", shown="10000")
    val_fraction: Optional[float] = option(None, "with --vocab", group=IMPORT, check="proper_fraction", shown="0.1")

    def __post_init__(self) -> None:
        super().__post_init__()
        given = [flag_name(name) for name in SOURCES if getattr(self, name) is not None]
        if not given:
            raise ConfigError("Give what to convert: --checkpoint (export), or --from-torch or --from-gluon "
                              "(import).")
        if len(given) > 1:
            raise ConfigError(f"{' and '.join(given)} exclude each other: convert one source at a time.")
        if self.checkpoint is not None:
            if self.to is None:
                raise ConfigError("--checkpoint needs --to, the format to write: torch, gluon or onnx.")
            if self.import_flags():
                raise ConfigError(f"{flag_name(self.import_flags()[0])} is for importing (--from-torch, "
                                  f"--from-gluon); a checkpoint already says it.")
        elif self.to is not None:
            raise ConfigError("--to is for exporting a --checkpoint; an import always writes a seqcore checkpoint.")

    def import_flags(self) -> list[str]:
        """The import fields given another value than their default."""
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        return [name for name in IMPORT_FLAGS if getattr(self, name) != defaults[name]]


def export(checkpoint: str, to: str, out: str, overwrite: bool = False) -> dict[str, Any]:
    """Write the checkpoint's model as `to` (torch, gluon or onnx) at `out`, checked first."""
    target = check_out(out, overwrite)
    if to == "onnx":
        check_onnx_installed()
    path = checkpoint_path(checkpoint, best=False)
    saved = load_checkpoint(path)
    spec = saved.model_spec
    check_convertible(spec)
    if to == "onnx" and isinstance(spec, Seq2SeqSpec):
        raise SeqcoreError("--to onnx exports the language and sequence models' plain module; an encoder-decoder "
                           "converts to its plain modules with --to torch or --to gluon.")
    arrays = to_foreign(spec, saved.params, "torch" if to == "onnx" else to)
    module = interchange(FRAMEWORK.get(to, "torch"))
    largest: list[float] = []

    def write_and_check(tmp: str) -> None:
        inputs = probe_inputs(spec)
        state = None if isinstance(spec, Seq2SeqSpec) else reference.begin_state(spec, inputs.shape[1])
        if to == "onnx":
            onnx = load_part("torch", "onnx")
            onnx.export_onnx(tmp, spec, arrays)
            got = onnx.onnx_forward(tmp, spec, inputs, state)
        else:
            module.write_weights(tmp, arrays)
            got = module.plain_forward(tmp, spec, inputs, state)
        largest.append(check_against_reference(spec, saved.params, inputs, got, WHAT[to]))

    with writing(target):
        atomic_write(target, write_and_check)
    return {"out": str(target), "format": to, "model": describe(spec), "num_tensors": len(arrays),
            "max_difference": largest[0], "checkpoint": str(path)}


def import_weights(source: str, fmt: str, out: str, overwrite: bool = False, *, cell: Optional[str] = None,
                   hidden_size: Optional[int] = None, num_layers: Optional[int] = None,
                   bidirectional: Optional[bool] = None, input_kind: Optional[str] = None,
                   activation: Optional[str] = None, readout: str = Readout.SEQUENCE.value,
                   vocab: Optional[str] = None, corpus: Optional[str] = None, token: Optional[str] = None,
                   max_tokens: Optional[int] = None, val_fraction: Optional[float] = None,
                   preset: Optional[str] = None) -> dict[str, Any]:
    """Read a foreign weight file (fmt torch or gluon) into a seqcore checkpoint at `out`.

    token, max_tokens (0: all), val_fraction: None takes the edition's (--preset, else the one the
    file's layout shows, else seqcore's defaults)."""
    target = check_out(out, overwrite)
    check_lm_flags(vocab, corpus, max_tokens, val_fraction, preset)
    module = interchange(FRAMEWORK[fmt])
    raw = module.read_weights(source)
    if is_scratch(raw):  # the book's scratch models: a list, or names like W_hq
        spec, params, edition = scratch_params(raw, str(source))
        check_scratch_flags(spec, str(source), cell=cell, hidden_size=hidden_size, num_layers=num_layers,
                            bidirectional=bidirectional, input_kind=input_kind, activation=activation, readout=readout)
        layout = f"d2l {edition}'s scratch {spec.cell.value.upper()}"
    else:
        arrays, edition = book_names(raw, fmt)
        spec = infer_spec(fmt, {k: tuple(v.shape) for k, v in arrays.items()}, str(source), cell=cell,
                          hidden_size=hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                          input_kind=input_kind, activation=activation, readout=readout)
        params = to_canonical(spec, arrays, fmt, str(source))
        layout = f"d2l {edition}'s {'RNNLM' if edition == '1.0' else 'RNNModel'}" if edition else "a plain module"
    provenance: dict[str, Any] = {"backend": FRAMEWORK[fmt], "imported_from": str(Path(source).resolve()),
                                  "imported_format": fmt, "imported_layout": layout}
    words, data, note, val_ppl = None, None, "", None
    if vocab is not None:
        preset = preset or edition_preset(edition)
        words, data, sizes = lm_data(vocab, spec, FRAMEWORK[fmt], corpus=corpus, token=token, max_tokens=max_tokens,
                                     val_fraction=val_fraction, preset=preset)
        val_ppl = measured(spec, params, data.val_ids, sizes, str(source), activation, fmt)
        provenance.update(sizes)
    elif spec.readout is Readout.SEQUENCE and spec.input_kind is not InputKind.DENSE:
        note = (f"{target} holds no vocabulary, so it is not a language-model checkpoint (tasks.evaluate refuses "
                f"it) until one is given: import again with --vocab FILE (d2l's vocab.idx_to_token as JSON)")
    difference = None
    if not is_scratch(raw):  # the arrays as read, in the plain module: the mapping's check
        inputs = probe_inputs(spec)
        state = reference.begin_state(spec, inputs.shape[1])
        with tempfile.TemporaryDirectory() as folder:
            module.write_weights(Path(folder) / "weights", to_foreign(spec, params, fmt))
            got = module.plain_forward(Path(folder) / "weights", spec, inputs, state)
        difference = check_against_reference(spec, params, inputs, got, WHAT[fmt])
    with writing(target):
        save_checkpoint(target, Checkpoint(model_spec=spec, params=params, data_spec=data.spec if data else None,
                                           vocab=words.to_dict() if words else None, provenance=provenance,
                                           fingerprint=data.fingerprint if data else {}))
    return {"out": str(target), "format": fmt, "model": describe(spec), "layout": layout, "num_tensors": len(raw),
            "max_difference": difference, "spec": spec.to_dict(), "val_ppl": val_ppl, "note": note,
            "preset": provenance.get("preset")}


def check_out(out: str, overwrite: bool) -> Path:
    """--out as a path: an existing file only with --overwrite, never a folder."""
    target = Path(out)
    if target.is_dir():
        raise SeqcoreError(f"--out {target} is a folder; name the file to write.")
    if target.exists() and not overwrite:
        raise SeqcoreError(f"--out {target} exists; add --overwrite to replace it.")
    return target


@contextlib.contextmanager
def writing(target: Path):
    """An OS error while --out is written (no permission, a full disk) as one sentence."""
    try:
        yield
    except OSError as error:
        raise SeqcoreError(f"--out {target} cannot be written ({error.strerror or error}).") from None


def check_onnx_installed() -> None:
    missing = [name for name in ("onnx", "onnxruntime") if not _installed(name)]
    if missing:
        raise SeqcoreError(f"--to onnx needs {' and '.join(missing)}: install the extra with "
                           f"pip install -e '.[onnx]'.")


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a module blocked with sys.modules[name] = None
        return False


def check_against_reference(spec: ModelSpec, params: Params, inputs: np.ndarray,
                            got: tuple[np.ndarray, Sequence[np.ndarray]], what: str) -> float:
    """The largest difference between a framework's logits and state and the float64 NumPy
    reference's; refused above TOLERANCE (relative to the largest logit)."""
    wide = {name: value.astype(np.float64) for name, value in params.items()}
    if isinstance(spec, Seq2SeqSpec):  # inputs: (source, source lengths, decoder inputs)
        logits, state = seq2seq_reference.forward(spec, wide, *inputs)
    else:
        logits, state = reference.forward(spec, wide, inputs)
    differences = [np.abs(np.asarray(got[0], np.float64) - logits).max()]
    differences += [np.abs(np.asarray(g, np.float64) - s).max() for g, s in zip(got[1], state)]
    difference = float(max(differences))
    if not difference <= TOLERANCE * max(1.0, float(np.abs(logits).max())):
        raise SeqcoreError(f"{what.capitalize()} of this model gives logits or states {difference:.2g} away from "
                           f"seqcore's reference, so nothing was written; please report it.")
    return difference


def interchange(framework: str):
    """`backends.<framework>.interchange`, or one sentence saying how to install the framework."""
    return load_part(framework, "interchange")


def main(argv: Optional[Sequence[str]] = None) -> int:
    options = parse_options(ConvertOptions, "python -m tasks.convert", argv, __doc__)
    if options.checkpoint is not None:
        result = export(options.checkpoint, options.to, options.out, options.overwrite)
        print(f"wrote {result['out']}: {result['model']} as {WHAT[options.to]} ({result['num_tensors']} tensors); "
              f"loaded back, it gives seqcore's logits to {result['max_difference']:.1g}")
        return 0
    fmt, source = ("torch", options.from_torch) if options.from_torch is not None else ("gluon", options.from_gluon)
    result = import_weights(source, fmt, options.out, options.overwrite, cell=options.cell,
                            hidden_size=options.hidden_size, num_layers=options.num_layers,
                            bidirectional=options.bidirectional, input_kind=options.input,
                            activation=options.activation, readout=options.readout, vocab=options.vocab,
                            corpus=options.corpus, token=options.token, max_tokens=options.max_tokens,
                            val_fraction=options.val_fraction, preset=options.preset)
    checked = ("" if result["max_difference"] is None else
               f"; seqcore's reference gives its logits to {result['max_difference']:.1g}")
    measured_ppl = ("" if result["val_ppl"] is None else
                    f"; validation perplexity {result['val_ppl']:.6g} (NumPy reference"
                    f"{', ' + result['preset'] + ' data' if result['preset'] else ''})")
    print(f"wrote {result['out']}: {result['model']} from {WHAT[fmt]}, {result['layout']} "
          f"({result['num_tensors']} tensors){checked}{measured_ppl}")
    if result["note"]:
        print(f"note: {result['note']}.")
    return 0


if __name__ == "__main__":
    run_main(main)
