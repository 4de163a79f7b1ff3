"""Canonical parameters: one NumPy layout that every backend loads and exports.

Names and shapes (G gates: RNN 1, GRU 3, LSTM 4; H hidden; D directions, 1 or 2; I_k input
width of layer k: the encoded input width for k = 0, D*H above):

    embedding.weight                (V, E)        only for InputKind.EMBEDDING
    rnn.l{k}.weight_ih              (G*H, I_k)    gate blocks stacked: LSTM i, f, g, o; GRU r, z, n
    rnn.l{k}.weight_hh              (G*H, H)
    rnn.l{k}.bias_ih                (G*H,)
    rnn.l{k}.bias_hh                (G*H,)        GRU: b_hn sits inside r * (W_hn h + b_hn);
                                                  absent with Bias.INPUT (d2l's scratch cells)
    rnn.l{k}.weight_ih_reverse ...  the same four for the reverse direction, when bidirectional,
                                    right after layer k's forward four
    head.weight                     (O, D*H)      Dense / Linear layout, (out, in)
    head.bias                       (O,)

This is exactly the layout of Gluon's fused layers (l{k}_i2h_weight ..., reverse r{k}_i2h_weight
...) and PyTorch's (weight_ih_l{k} ..., reverse weight_ih_l{k}_reverse ...), so a backend only
renames. The GRU's gru_reset form changes the equations, not the shapes. Values are float32.

An encoder-decoder (seqcore.model.seq2seq.Seq2SeqSpec) has its own layout; param_shapes,
init_params and check_params hand such a spec to that module, so the run layer, checkpoints and
the trainer state treat both families alike.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from seqcore.errors import SeqcoreError
from seqcore.model import seq2seq
from seqcore.model.spec import Bias, Init, InputKind, ModelSpec

Params = dict[str, np.ndarray]
DIRECTION_SUFFIXES = ("", "_reverse")  # by direction: forward, reverse (PyTorch's suffix)
GLUON_SCALE = 0.07  # mx.init.Uniform()'s default scale, what Block.initialize() draws weights from


def param_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape, in the canonical order (the order weights are drawn in)."""
    if isinstance(spec, seq2seq.Seq2SeqSpec):
        return seq2seq.param_shapes(spec)
    gh = spec.num_gates * spec.hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    if spec.input_kind is InputKind.EMBEDDING:
        shapes["embedding.weight"] = (spec.input_size, spec.embed_size)
    for layer in range(spec.num_layers):
        width = spec.rnn_input_size if layer == 0 else spec.output_width
        for suffix in DIRECTION_SUFFIXES[:spec.num_directions]:
            shapes[f"rnn.l{layer}.weight_ih{suffix}"] = (gh, width)
            shapes[f"rnn.l{layer}.weight_hh{suffix}"] = (gh, spec.hidden_size)
            shapes[f"rnn.l{layer}.bias_ih{suffix}"] = (gh,)
            if spec.bias is Bias.BOTH:
                shapes[f"rnn.l{layer}.bias_hh{suffix}"] = (gh,)
    shapes["head.weight"] = (spec.output_size, spec.output_width)
    shapes["head.bias"] = (spec.output_size,)
    return shapes


def init_params(spec: ModelSpec, scheme: Init | str = Init.UNIFORM, seed: int = 0) -> Params:
    """Draw every parameter from one seeded generator, so both backends start identical."""
    if isinstance(spec, seq2seq.Seq2SeqSpec):
        return seq2seq.init_params(spec, scheme, seed)
    scheme = Init(scheme)
    rng = np.random.default_rng(seed)
    return {
        name: _draw(rng, scheme, name, shape, spec).astype(np.float32)
        for name, shape in param_shapes(spec).items()
    }


def _draw(rng: np.random.Generator, scheme: Init, name: str, shape: tuple[int, ...], spec: ModelSpec) -> np.ndarray:
    is_bias = name.endswith("bias") or ".bias_" in name
    if name == "embedding.weight":
        if scheme is Init.UNIFORM:  # PyTorch's nn.Embedding default
            return rng.standard_normal(shape)
        if scheme is Init.NORMAL:
            return rng.normal(0.0, 0.01, shape)
        if scheme is Init.GLUON:
            return rng.uniform(-GLUON_SCALE, GLUON_SCALE, shape)
        return _xavier(rng, shape, fan_in=shape[1], fan_out=shape[0])
    if scheme is Init.UNIFORM:
        # PyTorch's nn.RNN/GRU/LSTM and nn.Linear(D*H, O) defaults: U(-1/sqrt(H), 1/sqrt(H)), biases
        # too; the head's bound is 1/sqrt(D*H), its input width (the same as before for D = 1).
        fan_in = spec.output_width if name.startswith("head.") else spec.hidden_size
        bound = 1.0 / math.sqrt(fan_in)
        return rng.uniform(-bound, bound, shape)
    if is_bias:
        return np.zeros(shape)
    if scheme is Init.NORMAL:
        return rng.normal(0.0, 0.01, shape)
    if scheme is Init.GLUON:
        return rng.uniform(-GLUON_SCALE, GLUON_SCALE, shape)
    if name == "head.weight":
        return _xavier(rng, shape, fan_in=shape[1], fan_out=shape[0])
    # Fused recurrent weights: Glorot per gate block, each block (H, I_k) mapping I_k -> H.
    blocks = [_xavier(rng, (spec.hidden_size, shape[1]), fan_in=shape[1], fan_out=spec.hidden_size)
              for _ in range(spec.num_gates)]
    return np.concatenate(blocks, axis=0)


def _xavier(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, fan_out: int) -> np.ndarray:
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, shape)


def check_params(spec: ModelSpec, params: Mapping[str, np.ndarray]) -> Params:
    """Return `params` as float32 arrays after checking names and shapes against `spec`."""
    if isinstance(spec, seq2seq.Seq2SeqSpec):
        return seq2seq.check_params(spec, params)
    expected = param_shapes(spec)
    missing = sorted(set(expected) - set(params))
    extra = sorted(set(params) - set(expected))
    if missing or extra:
        raise SeqcoreError(
            f"Parameters do not fit the model: missing {missing or 'none'}, unexpected {extra or 'none'}.")
    checked: Params = {}
    for name, shape in expected.items():
        value = np.asarray(params[name])
        if value.shape != shape:
            raise SeqcoreError(f"Parameter {name} has shape {value.shape}, the model needs {shape}.")
        checked[name] = value.astype(np.float32, copy=False)
    return checked


def check_trainer_state(spec: ModelSpec, adam: bool, arrays: Mapping[str, np.ndarray]) -> None:
    """Refuse, in one sentence, optimizer state (Backend.export_trainer_state's canonical names)
    that differs from what an SGD (adam=False: nothing) or Adam trainer of `spec` keeps."""
    shapes: dict[str, tuple[int, ...]] = {}
    if adam:
        shapes["adam.step"] = (1,)
        for name, shape in param_shapes(spec).items():
            shapes[f"adam.m/{name}"] = shapes[f"adam.v/{name}"] = shape
    kind = "Adam" if adam else "SGD"
    missing = [name for name in shapes if name not in arrays]
    unexpected = [name for name in arrays if name not in shapes]
    if missing or unexpected:
        problems = [f"{what} {_names(names)}"
                    for what, names in (("lacks", missing), ("has unexpected", unexpected)) if names]
        raise SeqcoreError(
            f"The trainer state does not fit the {kind} trainer: it {' and '.join(problems)}.")
    for name, shape in shapes.items():
        if np.shape(arrays[name]) != shape:
            raise SeqcoreError(f"The trainer state's {name} has shape {np.shape(arrays[name])}, "
                               f"the {kind} trainer needs {shape}.")


def _names(names: list[str]) -> str:
    """The first three names, and how many more."""
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
