"""NumPy reference of every model: the oracle the backends are tested against.

Small and literal on purpose (min-char-rnn sized): one function per cell step, written as the
equations, with the canonical gate order. Works in whatever float dtype the parameters have, so
tests can run it in float64 for finite-difference gradients.

Shapes: X is (T, N) int token ids for ONEHOT / EMBEDDING inputs or (T, N, I) floats for DENSE;
each state is a tuple of (L, N, H) arrays: (h,) for RNN and GRU, (h, c) for LSTM.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from .specs import Activation, Cell, InputKind, Loss, ModelSpec, Readout

State = tuple[np.ndarray, ...]


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def rnn_step(x, h, w_ih, w_hh, b_ih, b_hh, activation=Activation.TANH):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh)."""
    z = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    return np.tanh(z) if Activation(activation) is Activation.TANH else np.maximum(z, 0.0)


def gru_step(x, h, w_ih, w_hh, b_ih, b_hh):
    """Gates r, z, n; the reset gate multiplies the hidden projection *with* its bias."""
    xr, xz, xn = np.split(x @ w_ih.T + b_ih, 3, axis=-1)
    hr, hz, hn = np.split(h @ w_hh.T + b_hh, 3, axis=-1)
    r = sigmoid(xr + hr)
    z = sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    return (1.0 - z) * n + z * h


def lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """Gates i, f, g, o: c' = f*c + i*g, h' = o*tanh(c')."""
    i, f, g, o = np.split(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def begin_state(spec: ModelSpec, batch_size: int, dtype=np.float32) -> State:
    zeros = np.zeros((spec.num_layers, batch_size, spec.hidden_size), dtype=dtype)
    return tuple(zeros.copy() for _ in range(spec.num_states))


def encode_inputs(spec: ModelSpec, params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """(T, N) ids or (T, N, I) floats -> (T, N, rnn_input_size) in the parameters' dtype."""
    dtype = params["head.weight"].dtype
    if spec.input_kind is InputKind.DENSE:
        return np.asarray(X, dtype=dtype)
    ids = np.asarray(X, dtype=np.int64)
    if spec.input_kind is InputKind.EMBEDDING:
        return params["embedding.weight"][ids]
    return np.eye(spec.input_size, dtype=dtype)[ids]


def forward(spec: ModelSpec, params: Mapping[str, np.ndarray], X: np.ndarray,
            state: State | None = None) -> tuple[np.ndarray, State]:
    """Outputs (T, N, O) for Readout.SEQUENCE or (N, O) for Readout.LAST, and the new state."""
    inputs = encode_inputs(spec, params, X)
    num_steps, batch_size = inputs.shape[:2]
    dtype = params["head.weight"].dtype
    state = begin_state(spec, batch_size, dtype) if state is None else state
    new_state = [list(s) for s in state]  # per state kind, per layer
    layer_input = inputs
    for layer in range(spec.num_layers):
        w = [params[f"rnn.l{layer}.{k}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h = state[0][layer]
        c = state[1][layer] if spec.cell is Cell.LSTM else None
        outputs = []
        for t in range(num_steps):
            x = layer_input[t]
            if spec.cell is Cell.RNN:
                h = rnn_step(x, h, *w, activation=spec.activation)
            elif spec.cell is Cell.GRU:
                h = gru_step(x, h, *w)
            else:
                h, c = lstm_step(x, h, c, *w)
            outputs.append(h)
        new_state[0][layer] = h
        if c is not None:
            new_state[1][layer] = c
        layer_input = np.stack(outputs)  # (T, N, H)
    features = layer_input[-1] if spec.readout is Readout.LAST else layer_input
    out = features @ params["head.weight"].T + params["head.bias"]
    return out, tuple(np.stack(s) for s in new_state)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, shifted by the maximum so exp cannot overflow."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def cross_entropies(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log p(target) for every target id: logits (..., C), targets (...) -> (...)."""
    ids = np.asarray(targets, dtype=np.int64)
    return -np.take_along_axis(log_softmax(logits), ids[..., None], axis=-1)[..., 0]


def loss(kind: Loss, outputs: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy over every target id, or mean squared error over every element."""
    if Loss(kind) is Loss.MSE:
        return float(np.mean((outputs - targets) ** 2))
    return float(cross_entropies(outputs, targets).mean())
