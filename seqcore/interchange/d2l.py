"""The d2l book's saved models, both editions, as seqcore's canonical parameters (framework-free).

What the book's readers save (the book's "File I/O" sections: `save_parameters` / `state_dict`
for blocks, `npx.save` / `torch.save` of arrays otherwise), V tokens, H hidden units:

  0.17 RNNModel (concise)   Gluon: rnn._unfused.0.i2h_weight ..., dense.weight, dense.bias
                            PyTorch: rnn.weight_ih_l0 ..., linear.weight, linear.bias
  0.17 RNNModelScratch      its `params` list, in get_params' order (RNN: W_xh, W_hh, b_h, W_hq, b_q;
                            GRU: the z, r, h triples; LSTM: the i, f, o, c triples; then W_hq, b_q)
  1.0 RNNLM (concise)       the d2l.RNN wrapper adds a level: rnn.rnn.*, and linear.*
  1.0 RNNLMScratch          PyTorch: state_dict W_hq, b_q, rnn.W_xh, rnn.W_hh, rnn.b_h (GRU: W_xz ...,
                            LSTM: W_xi ...); MXNet holds plain arrays (no Gluon parameters): a dict of
                            those names, or `model.get_scratch_params()`, which lists them in dir()
                            order: W_hq, b_q, then the cell's, sorted (capitals first)

The scratch matrices are (inputs, H), the transpose of the canonical (G*H, inputs) blocks; one bias
per gate (seqcore's Bias.INPUT); the book's scratch GRU applies its reset gate before the hidden
matmul. Gate blocks go to the canonical order: GRU r, z, n from the book's r, z, h; LSTM i, f, g, o
from its i, f, c, o.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from seqcore.errors import SeqcoreError
from seqcore.model.params import Params
from seqcore.model.spec import Bias, Cell, GRUReset, Impl, ModelSpec

EDITIONS = ("0.17", "1.0")
BOOK_GATES = {Cell.RNN: ("h",), Cell.GRU: ("r", "z", "h"), Cell.LSTM: ("i", "f", "c", "o")}  # canonical order
_GET_PARAMS_ORDER = {  # 0.17's get_params
    Cell.RNN: ("h",), Cell.GRU: ("z", "r", "h"), Cell.LSTM: ("i", "f", "o", "c")}
_HEAD = {"torch": "linear", "gluon": "dense"}  # 0.17's RNNModel; 1.0's RNNLM calls it linear on both


def book_names(arrays: Mapping[str, Any], fmt: str) -> tuple[dict[str, Any], str | None]:
    """A concise model's arrays with the book's names made the plain module's (`head`, one `rnn`
    level), and the edition whose layout they had (None: seqcore's plain module or unknown)."""
    names = list(arrays)
    if any(name.startswith("head.") for name in names):
        return dict(arrays), None
    edition = "1.0" if any(name.startswith("rnn.rnn.") for name in names) else "0.17"
    heads = [child for child in ("linear", _HEAD.get(fmt, "linear")) if f"{child}.weight" in arrays]
    if not heads:
        return dict(arrays), None
    renamed = {}
    for name, value in arrays.items():
        if name.startswith("rnn.rnn."):
            name = name[len("rnn."):]
        elif name.startswith(heads[0] + "."):
            name = "head." + name[len(heads[0]) + 1:]
        renamed[name] = value
    return renamed, edition


def is_scratch(arrays: Mapping[str, Any] | Sequence[Any]) -> bool:
    """True for the book's scratch parameters: a list of arrays, or names like W_hq and rnn.W_xh."""
    if not isinstance(arrays, Mapping):
        return True
    return "W_hq" in arrays


def _cell_of(names: set[str]) -> Cell:
    for cell in (Cell.LSTM, Cell.GRU):
        if all(f"W_x{gate}" in names for gate in BOOK_GATES[cell]):
            return cell
    return Cell.RNN


def _named_from_list(arrays: Sequence[np.ndarray], source: str) -> tuple[dict[str, np.ndarray], str]:
    """A list the book's code saved, by name: 0.17's get_params order or 1.0's get_scratch_params."""
    count = len(arrays)
    by_count = {5: Cell.RNN, 11: Cell.GRU, 14: Cell.LSTM}
    if count not in by_count:
        raise SeqcoreError(f"{source} holds a list of {count} arrays; the book's scratch models save 5 (RNN), "
                           f"11 (GRU) or 14 (LSTM).")
    cell = by_count[count]
    ndims = [np.ndim(a) for a in arrays]
    if ndims[1] == 1:  # 1.0: W_hq, b_q first, then the cell's arrays in sorted (dir()) order
        order = ["W_hq", "b_q"] + sorted(f"{kind}{gate}" for gate in BOOK_GATES[cell]
                                         for kind in ("W_x", "W_h", "b_"))
        edition = "1.0"
    else:  # 0.17: per gate W_x?, W_h?, b_?, then W_hq, b_q
        order = [f"{kind}{gate}" for gate in _GET_PARAMS_ORDER[cell] for kind in ("W_x", "W_h", "b_")]
        order += ["W_hq", "b_q"]
        edition = "0.17"
    named = dict(zip(order, arrays))
    expected = [2 if name.startswith("W") else 1 for name in order]
    if ndims != expected:
        raise SeqcoreError(f"{source} holds {count} arrays of {ndims} dimensions, not the {expected} of "
                           f"d2l {edition}'s scratch {cell.value.upper()} ({', '.join(order)}).")
    return named, edition


def scratch_params(arrays: Mapping[str, Any] | Sequence[Any], source: str) -> tuple[ModelSpec, Params, str]:
    """The book's scratch parameters (a list, or the names of a state_dict / dict) as a seqcore
    scratch model with one bias per gate, its canonical parameters and the book's edition."""
    if isinstance(arrays, Mapping):
        named = {name[len("rnn."):] if name.startswith("rnn.") else name: value for name, value in arrays.items()}
        edition = "1.0"
    else:
        named, edition = _named_from_list(list(arrays), source)
    cell = _cell_of(set(named))
    expected = {"W_hq", "b_q"} | {f"{kind}{gate}" for gate in BOOK_GATES[cell] for kind in ("W_x", "W_h", "b_")}
    missing, extra = sorted(expected - set(named)), sorted(set(named) - expected)
    if missing or extra:
        problems = "; ".join(f"{what} {', '.join(keys)}" for what, keys in (("lacks", missing), ("has also", extra))
                             if keys)
        raise SeqcoreError(f"{source} holds the book's scratch names for a {cell.value.upper()} ({', '.join(sorted(named))}) "
                           f"but {problems}.")
    values = {name: np.asarray(value) for name, value in named.items()}
    for name, value in values.items():
        if value.dtype.kind != "f":
            raise SeqcoreError(f"{source}'s {name} is {value.dtype}, not floating point.")
        if not np.all(np.isfinite(value)):
            raise SeqcoreError(f"{source}'s {name} holds non-finite values; the weights are unusable.")
    hidden, vocab = values["W_hq"].shape
    gate = BOOK_GATES[cell][0]
    inputs = values[f"W_x{gate}"].shape[0]
    shapes = {"b_q": (vocab,)}
    for g in BOOK_GATES[cell]:
        shapes.update({f"W_x{g}": (inputs, hidden), f"W_h{g}": (hidden, hidden), f"b_{g}": (hidden,)})
    for name, shape in shapes.items():
        if values[name].shape != shape:
            raise SeqcoreError(f"{source}'s {name} has shape {values[name].shape}, but W_hq {values['W_hq'].shape} "
                               f"and W_x{gate} {values[f'W_x{gate}'].shape} make it {shape}.")
    params: Params = {
        "rnn.l0.weight_ih": np.concatenate([values[f"W_x{g}"].T for g in BOOK_GATES[cell]]),
        "rnn.l0.weight_hh": np.concatenate([values[f"W_h{g}"].T for g in BOOK_GATES[cell]]),
        "rnn.l0.bias_ih": np.concatenate([values[f"b_{g}"] for g in BOOK_GATES[cell]]),
        "head.weight": values["W_hq"].T,
        "head.bias": values["b_q"],
    }
    params = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in params.items()}
    try:
        spec = ModelSpec(cell=cell, impl=Impl.SCRATCH, input_size=int(inputs), hidden_size=int(hidden),
                         output_size=int(vocab), bias=Bias.INPUT,
                         gru_reset=GRUReset.BEFORE if cell is Cell.GRU else GRUReset.AFTER)
    except SeqcoreError as error:
        raise SeqcoreError(f"{source} does not describe a usable model: {str(error).rstrip('.')}.") from None
    return spec, params, edition


def with_hidden_bias(spec: ModelSpec, params: Mapping[str, np.ndarray]) -> tuple[ModelSpec, Params]:
    """A one-bias (Bias.INPUT) model as the same model with zero b_hh: what the frameworks' fused
    layers hold, for writing it to their files."""
    if spec.bias is Bias.BOTH:
        return spec, dict(params)
    full = dict(params)
    for name in list(params):
        if ".bias_ih" in name:
            full[name.replace(".bias_ih", ".bias_hh")] = np.zeros_like(params[name])
    return dataclasses.replace(spec, bias=Bias.BOTH), full
