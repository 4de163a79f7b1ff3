"""Weights in each framework's own format: the name maps and checks, framework-free.

A seqcore model maps onto a plain module of either framework whose children are `embedding`
(when the input is an embedding), `rnn` (the fused layer) and `head` (Linear / Dense):

    canonical                     PyTorch state_dict               Gluon .params (save_parameters)
    embedding.weight              embedding.weight                 embedding.weight
    rnn.l{k}.weight_ih            rnn.weight_ih_l{k}               rnn._unfused.{k}.i2h_weight
    rnn.l{k}.weight_hh            rnn.weight_hh_l{k}               rnn._unfused.{k}.h2h_weight
    rnn.l{k}.bias_ih / bias_hh    rnn.bias_ih_l{k} / bias_hh_l{k}  rnn._unfused.{k}.i2h_bias / h2h_bias
    head.weight / head.bias       head.weight / head.bias          head.weight / head.bias
  bidirectional:
    rnn.l{k}.weight_ih            rnn.weight_ih_l{k}               rnn._unfused.{k}.l_cell.i2h_weight
    rnn.l{k}.weight_ih_reverse    rnn.weight_ih_l{k}_reverse       rnn._unfused.{k}.r_cell.i2h_weight  (and so on)

Gluon's fused layers hold their parameters as attributes l{k}_i2h_weight / r{k}_i2h_weight, but
MXNet 1.9's save_parameters and load_parameters name them as the old unfused cell stack did
(`_RNNLayer._collect_params_with_prefix`), which is what a .params file holds. Shapes are the
same on all three sides (seqcore.model.params), so a conversion only renames. Reading
and writing the files is the backends' part (`backends/<name>/interchange.py`); this module
decides the names, infers a ModelSpec from a foreign file's shapes and refuses, in one
sentence, a file that does not fit. The d2l book's own files, both editions, are read by
seqcore.interchange.d2l.

An encoder-decoder (seqcore.model.seq2seq, export only) maps onto children encoder.{embedding,
rnn} and decoder.{embedding, rnn, head}, each named as above under its stack's prefix
(encoder.rnn.l0.weight_ih -> encoder.rnn.weight_ih_l0 / encoder.rnn._unfused.0.i2h_weight). Its
attention has no built-in module in either framework, so an attending model has no plain form.
"""
from __future__ import annotations

import re
from typing import Any, Mapping, Optional

import numpy as np

from seqcore.checks import parse_enum
from seqcore.errors import SeqcoreError
from seqcore.interchange.d2l import with_hidden_bias
from seqcore.model import seq2seq
from seqcore.model.params import Params, param_shapes
from seqcore.model.spec import GATES, Activation, Cell, GRUReset, Impl, InputKind, ModelSpec, Readout

FORMATS = ("torch", "gluon")  # a PyTorch state_dict file, a Gluon save_parameters file
FRAMEWORK = {"torch": "torch", "gluon": "mxnet"}  # the backend whose interchange module reads / writes it
DEFAULT_ACTIVATION = {"torch": Activation.TANH, "gluon": Activation.RELU}  # each framework's nn.RNN default
_GLUON = {"weight_ih": "i2h_weight", "weight_hh": "h2h_weight", "bias_ih": "i2h_bias", "bias_hh": "h2h_bias"}
_CANONICAL_RNN = re.compile(r"rnn\.l(\d+)\.(weight_ih|weight_hh|bias_ih|bias_hh)(_reverse)?")
_FOREIGN_RNN = {
    "torch": re.compile(r"rnn\.(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)(_reverse)?"),
    "gluon": re.compile(r"rnn\._unfused\.(\d+)\.(?:([lr])_cell\.)?(i2h|h2h)_(weight|bias)"),
}
_CELL_BY_GATES = {gates: cell for cell, gates in GATES.items()}
D2L_HEAD = {"torch": "linear", "gluon": "dense"}  # the d2l book's RNNModel names its output layer so


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise SeqcoreError(f"Unknown weight format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    return fmt


def check_convertible(spec: ModelSpec | seq2seq.Seq2SeqSpec) -> None:
    """Refuse a model the plain framework modules cannot represent."""
    if isinstance(spec, seq2seq.Seq2SeqSpec) and spec.attends:
        raise SeqcoreError(f"This encoder-decoder's decoder attends ({spec.attention.value} attention), and "
                           f"attention has no built-in module in PyTorch or Gluon, so it has no plain-module "
                           f"form; only an encoder-decoder without attention (--attention none) converts.")
    if spec.cell is Cell.GRU and spec.gru_reset is GRUReset.BEFORE:
        raise SeqcoreError("This GRU applies the reset gate before the hidden matmul (--gru-reset before), "
                           "which PyTorch's nn.GRU and Gluon's rnn.GRU cannot compute; only seqcore's "
                           "scratch models run it.")


def foreign_name(canonical: str, fmt: str, bidirectional: bool = False) -> str:
    """One canonical parameter name in `fmt`'s naming (the plain module's state_dict key); Gluon
    names a bidirectional model's forward weights differently from a unidirectional one's."""
    match = _CANONICAL_RNN.fullmatch(canonical)
    if match is None:
        return canonical  # embedding.weight, head.weight, head.bias: the same everywhere
    layer, base, reverse = match.group(1), match.group(2), bool(match.group(3))
    if check_format(fmt) == "torch":
        return f"rnn.{base}_l{layer}{'_reverse' if reverse else ''}"
    cell = f"{'r' if reverse else 'l'}_cell." if bidirectional else ""
    return f"rnn._unfused.{layer}.{cell}{_GLUON[base]}"


def foreign_names(spec: ModelSpec | seq2seq.Seq2SeqSpec, fmt: str) -> dict[str, str]:
    """{canonical name: foreign name} for every parameter of `spec`, in canonical order."""
    if isinstance(spec, seq2seq.Seq2SeqSpec):  # 'encoder.rnn.l0.weight_ih' -> 'encoder.' + the stack's name
        return {name: f"{name.partition('.')[0]}.{foreign_name(name.partition('.')[2], fmt)}"
                for name in seq2seq.param_shapes(spec)}
    return {name: foreign_name(name, fmt, spec.bidirectional) for name in param_shapes(spec)}


def to_foreign(spec: ModelSpec | seq2seq.Seq2SeqSpec, params: Mapping[str, np.ndarray],
               fmt: str) -> dict[str, np.ndarray]:
    """Canonical parameters renamed for `fmt`, float32 and contiguous, ready to be written; a
    one-bias model (d2l's scratch cells) gets the zero b_hh the fused layers hold (an
    encoder-decoder always has both biases)."""
    check_convertible(spec)
    if isinstance(spec, ModelSpec):
        spec, params = with_hidden_bias(spec, params)
    return {foreign: np.ascontiguousarray(params[name], dtype=np.float32)
            for name, foreign in foreign_names(spec, fmt).items()}


def describe(spec: ModelSpec) -> str:
    """'a 2-layer bidirectional LSTM of 8 hidden units reading an embedding of 10 x 4', for sentences."""
    if isinstance(spec, seq2seq.Seq2SeqSpec):
        layers = f"{spec.num_layers}-layer " if spec.num_layers > 1 else ""
        return (f"a {layers}{spec.cell.value.upper()} encoder-decoder of {spec.hidden_size} hidden units (embeddings "
                f"{spec.source_vocab_size} x {spec.embed_size} and {spec.target_vocab_size} x {spec.embed_size})")
    layers = f"{spec.num_layers}-layer " if spec.num_layers > 1 else ""
    both = "bidirectional " if spec.bidirectional else ""
    reads = {InputKind.EMBEDDING: f"an embedding of {spec.input_size} x {spec.embed_size}",
             InputKind.ONEHOT: f"{spec.input_size} one-hot inputs",
             InputKind.DENSE: f"{spec.input_size} input features"}[spec.input_kind]
    text = f"{layers}{both}{spec.cell.value.upper()} of {spec.hidden_size} hidden units reading {reads}"
    vowel_sound = text.startswith(("RNN", "LSTM", "8", "11", "18")) or text[0] in "aeiou"
    return f"{'an' if vowel_sound else 'a'} {text}"


def d2l_head(arrays: Mapping[str, Any], fmt: str) -> dict[str, Any]:
    """`arrays` with the d2l book's output layer (RNNModel's `dense` in MXNet, `linear` in
    PyTorch) renamed to `head`, so the book's own models import as they were saved."""
    child = D2L_HEAD[check_format(fmt)]
    if any(name.startswith("head.") for name in arrays) or f"{child}.weight" not in arrays:
        return dict(arrays)
    return {("head." + name[len(child) + 1:] if name.startswith(child + ".") else name): value
            for name, value in arrays.items()}


def infer_spec(fmt: str, shapes: Mapping[str, tuple[int, ...]], source: str, *,
               cell: Optional[str] = None, hidden_size: Optional[int] = None,
               num_layers: Optional[int] = None, bidirectional: Optional[bool] = None,
               input_kind: Optional[str] = None, activation: Optional[str] = None,
               readout: str = Readout.SEQUENCE.value) -> ModelSpec:
    """The ModelSpec a foreign file of these parameter shapes holds; every argument given is
    checked against the file (cell from the gate count, hidden size, layers, directions, input).

    What the shapes cannot tell: one-hot or dense input without an embedding (default one-hot),
    the RNN's activation (default: the framework's own, tanh for PyTorch, relu for Gluon) and
    the readout (default: every time step).
    """
    check_format(fmt)
    layers = sorted({_foreign_layer(fmt, key) for key in shapes if _FOREIGN_RNN[fmt].fullmatch(key)})
    found_reverse = any(_foreign_reverse(fmt, key) for key in shapes if _FOREIGN_RNN[fmt].fullmatch(key))
    example = foreign_name("rnn.l0.weight_hh", fmt, found_reverse)
    if not layers:
        raise SeqcoreError(f"{source} holds no recurrent weights named like {example} (the plain module's "
                           f"children must be called embedding, rnn and head); its keys are {_names(sorted(shapes))}.")
    hh = shapes.get(example)
    if hh is None or len(hh) != 2 or hh[1] == 0:
        raise SeqcoreError(f"{source} has no 2-D {example} to read the hidden size from "
                           f"(found {'nothing' if hh is None else hh}).")
    found_hidden = hh[1]
    gates, rest = divmod(hh[0], found_hidden)
    if rest or gates not in _CELL_BY_GATES:
        raise SeqcoreError(f"{source}'s {example} has shape {tuple(hh)}, which is not G*H x H for an RNN (G=1), "
                           f"a GRU (3) or an LSTM (4).")
    found_cell = _CELL_BY_GATES[gates]
    if cell is not None and parse_enum(Cell, cell, "cell") is not found_cell:
        wanted = parse_enum(Cell, cell, "cell")
        raise SeqcoreError(f"{source} holds a {found_cell.value.upper()} ({example} has {gates} gate blocks of "
                           f"{found_hidden}: {tuple(hh)}), not the {wanted.value.upper()} that --cell says "
                           f"({GATES[wanted]} gate blocks).")
    _agree(source, "--hidden-size", hidden_size, found_hidden, f"hidden units ({example} is {tuple(hh)})")
    _agree(source, "--num-layers", num_layers, layers[-1] + 1, "recurrent layers")
    if bidirectional and not found_reverse:
        raise SeqcoreError(f"{source} holds no reverse-direction weights, but --bidirectional says it should.")
    embedded = "embedding.weight" in shapes
    kind = parse_enum(InputKind, input_kind, "input") if input_kind else (
        InputKind.EMBEDDING if embedded else InputKind.ONEHOT)
    if embedded and kind is not InputKind.EMBEDDING:
        raise SeqcoreError(f"{source} holds embedding.weight, so its input is an embedding, not {kind.value} "
                           f"as --input says.")
    if kind is InputKind.EMBEDDING:
        table = shapes.get("embedding.weight")
        if table is None or len(table) != 2:
            raise SeqcoreError(f"{source} has no 2-D embedding.weight, but --input embedding needs one "
                               f"(found {'nothing' if table is None else tuple(table)}).")
        input_size, embed_size = table
    else:
        first = foreign_name("rnn.l0.weight_ih", fmt, found_reverse)
        ih = shapes.get(first)
        if ih is None or len(ih) != 2:
            raise SeqcoreError(f"{source} has no 2-D {first} to read the input width from.")
        input_size, embed_size = ih[1], 0
    head = shapes.get("head.weight")
    if head is None or len(head) != 2:
        raise SeqcoreError(f"{source} has no 2-D head.weight (the output layer must be the child called head); "
                           f"its keys are {_names(sorted(shapes))}.")
    if found_cell is not Cell.RNN and activation not in (None, Activation.TANH.value):
        raise SeqcoreError(f"--activation only applies to an RNN, but {source} holds a "
                           f"{found_cell.value.upper()}.")
    chosen = activation or DEFAULT_ACTIVATION[fmt].value
    try:
        return ModelSpec(cell=found_cell, impl=Impl.CONCISE, input_size=int(input_size),
                         hidden_size=int(found_hidden), output_size=int(head[0]), num_layers=layers[-1] + 1,
                         input_kind=kind, embed_size=int(embed_size),
                         activation=chosen if found_cell is Cell.RNN else Activation.TANH,
                         readout=readout, bidirectional=found_reverse)
    except SeqcoreError as error:
        raise SeqcoreError(f"{source} does not describe a usable model: {str(error).rstrip('.')}.") from None


def to_canonical(spec: ModelSpec, arrays: Mapping[str, np.ndarray], fmt: str, source: str) -> Params:
    """A foreign file's arrays as canonical float32 parameters, after checking names, shapes,
    dtypes and values against `spec`."""
    names = foreign_names(spec, fmt)
    expected = set(names.values())
    missing = [n for n in names.values() if n not in arrays]
    extra = sorted(set(arrays) - expected)
    if missing or extra:
        problems = [f"{what} {_names(keys)}" for what, keys in (("lacks", missing), ("has unexpected", extra)) if keys]
        raise SeqcoreError(f"{source} does not fit {describe(spec)}: it {' and '.join(problems)}.")
    shapes = param_shapes(spec)
    params: Params = {}
    for name, foreign in names.items():
        value = np.asarray(arrays[foreign])
        if value.shape != shapes[name]:
            raise SeqcoreError(f"{source}'s {foreign} has shape {value.shape}, but {describe(spec)} needs "
                               f"{shapes[name]}.")
        if value.dtype.kind != "f":
            raise SeqcoreError(f"{source}'s {foreign} is {value.dtype}, not floating point.")
        if not np.all(np.isfinite(value)):
            raise SeqcoreError(f"{source}'s {foreign} holds non-finite values; the weights are unusable.")
        params[name] = value.astype(np.float32)
    return params


def probe_inputs(spec: ModelSpec, num_steps: int = 3, batch_size: int = 2, seed: int = 0) -> np.ndarray:
    """A small batch to check a written file against the NumPy reference: (T, N) ids or (T, N, I); an
    encoder-decoder's (source ids, source lengths, decoder input ids)."""
    rng = np.random.default_rng(seed)
    if isinstance(spec, seq2seq.Seq2SeqSpec):
        return (rng.integers(0, spec.source_vocab_size, (num_steps, batch_size)).astype(np.int64),
                np.full(batch_size, num_steps, np.int64),
                rng.integers(0, spec.target_vocab_size, (num_steps + 1, batch_size)).astype(np.int64))
    if spec.input_kind is InputKind.DENSE:
        return rng.standard_normal((num_steps, batch_size, spec.input_size)).astype(np.float32)
    return rng.integers(0, spec.input_size, (num_steps, batch_size)).astype(np.int64)


def _foreign_layer(fmt: str, key: str) -> int:
    match = _FOREIGN_RNN[fmt].fullmatch(key)
    return int(match.group(2 if fmt == "torch" else 1))


def _foreign_reverse(fmt: str, key: str) -> bool:
    match = _FOREIGN_RNN[fmt].fullmatch(key)
    return bool(match.group(3)) if fmt == "torch" else match.group(2) == "r"


def _agree(source: str, flag: str, given: Optional[int], found: int, what: str) -> None:
    if given is not None and given != found:
        raise SeqcoreError(f"{source} holds {found} {what}, not the {given} that {flag} says.")


def _names(names: list[str]) -> str:
    """The first four names, and how many more."""
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "") if names else "none"
