"""NumPy reference of every model: the oracle the backends are tested against.

Small and literal on purpose (min-char-rnn sized): one function per cell step, written as the
equations, with the canonical gate order. Works in whatever float dtype the parameters have, so
tests can run it in float64 for finite-difference gradients.

Shapes (D = spec.num_directions): X is (T, N) int token ids for ONEHOT / EMBEDDING inputs or
(T, N, I) floats for DENSE; each state is a tuple of (L*D, N, H) arrays, (h,) for RNN and GRU,
(h, c) for LSTM, indexed layer*D + direction; a layer's outputs are (T, N, D*H), the forward
direction's first. The reverse direction reads the inputs from t = T-1 down to 0: its output
at t is its state after reading inputs T-1 .. t, as in PyTorch and Gluon.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from seqcore.model.params import DIRECTION_SUFFIXES
from seqcore.model.spec import Activation, Cell, GRUReset, InputKind, Loss, ModelSpec, Readout

State = tuple[np.ndarray, ...]
_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def rnn_step(x, h, w_ih, w_hh, b_ih, b_hh, activation=Activation.TANH):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh)."""
    z = x @ w_ih.T + b_ih + h @ w_hh.T + b_hh
    return np.tanh(z) if Activation(activation) is Activation.TANH else np.maximum(z, 0.0)


def gru_step(x, h, w_ih, w_hh, b_ih, b_hh, reset=GRUReset.AFTER):
    """Gates r, z, n; h' = (1 - z) n + z h.

    AFTER:  n = tanh(W_in x + b_in + r * (W_hn h + b_hn))  (the hidden bias inside the reset)
    BEFORE: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)
    """
    xr, xz, xn = np.split(x @ w_ih.T + b_ih, 3, axis=-1)
    hr, hz, hn = np.split(h @ w_hh.T + b_hh, 3, axis=-1)
    r = sigmoid(xr + hr)
    z = sigmoid(xz + hz)
    if GRUReset(reset) is GRUReset.BEFORE:
        size = h.shape[-1]
        hn = (r * h) @ w_hh[2 * size:].T + b_hh[2 * size:]
        n = np.tanh(xn + hn)
    else:
        n = np.tanh(xn + r * hn)
    return (1.0 - z) * n + z * h


def lstm_step(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """Gates i, f, g, o: c' = f*c + i*g, h' = o*tanh(c')."""
    i, f, g, o = np.split(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def begin_state(spec: ModelSpec, batch_size: int, dtype=np.float32) -> State:
    """Zeros, (L*D, N, H) per state part."""
    shape = (spec.num_layers * spec.num_directions, batch_size, spec.hidden_size)
    return tuple(np.zeros(shape, dtype=dtype) for _ in range(spec.num_states))


def encode_inputs(spec: ModelSpec, params: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """(T, N) ids or (T, N, I) floats -> (T, N, rnn_input_size) in the parameters' dtype."""
    dtype = params["head.weight"].dtype
    if spec.input_kind is InputKind.DENSE:
        return np.asarray(X, dtype=dtype)
    ids = np.asarray(X, dtype=np.int64)
    if spec.input_kind is InputKind.EMBEDDING:
        return params["embedding.weight"][ids]
    return np.eye(spec.input_size, dtype=dtype)[ids]


def run_direction(spec: ModelSpec, weights: Sequence[np.ndarray], inputs: np.ndarray,
                  state: State, reverse: bool = False) -> tuple[np.ndarray, State]:
    """One direction of one layer: inputs (T, N, I_k), state (h,) or (h, c) of (N, H) ->
    outputs (T, N, H) in input time order, and the final state (after t = 0 when reverse)."""
    h = state[0]
    c = state[1] if spec.cell is Cell.LSTM else None
    steps = range(len(inputs) - 1, -1, -1) if reverse else range(len(inputs))
    outputs = [None] * len(inputs)
    for t in steps:
        if spec.cell is Cell.RNN:
            h = rnn_step(inputs[t], h, *weights, activation=spec.activation)
        elif spec.cell is Cell.GRU:
            h = gru_step(inputs[t], h, *weights, reset=spec.gru_reset)
        else:
            h, c = lstm_step(inputs[t], h, c, *weights)
        outputs[t] = h
    return np.stack(outputs), ((h,) if c is None else (h, c))


def last_features(spec: ModelSpec, outputs: np.ndarray) -> np.ndarray:
    """What Readout.LAST's head reads from the top layer's (T, N, D*H) outputs: (N, D*H).

    Unidirectional: outputs[-1]. Bidirectional: the forward half at T-1 beside the reverse half
    at t = 0, i.e. both directions' final states (Keras Bidirectional without return_sequences).
    """
    if spec.num_directions == 1:
        return outputs[-1]
    size = spec.hidden_size
    return np.concatenate([outputs[-1, :, :size], outputs[0, :, size:]], axis=-1)


def forward(spec: ModelSpec, params: Mapping[str, np.ndarray], X: np.ndarray,
            state: State | None = None,
            masks: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, State]:
    """Outputs (T, N, O) for Readout.SEQUENCE or (N, O) for Readout.LAST, and the new state.

    masks: seqcore.model.dropout's masks (training with dropout): masks[k-1] (T, N, D*H) multiplies
    the inputs of layer k >= 1 and masks[-1] the head's input. None runs without dropout.
    """
    inputs = encode_inputs(spec, params, X)
    batch_size = inputs.shape[1]
    dtype = params["head.weight"].dtype
    state = begin_state(spec, batch_size, dtype) if state is None else state
    directions = spec.num_directions
    new_state = [list(part) for part in state]  # per state part, per layer*D + direction
    layer_input = inputs  # (T, N, I_k)
    for layer in range(spec.num_layers):
        if masks is not None and layer > 0:
            layer_input = layer_input * masks[layer - 1]
        halves = []
        for direction, suffix in enumerate(DIRECTION_SUFFIXES[:directions]):
            index = layer * directions + direction
            b_ih = params[f"rnn.l{layer}.bias_ih{suffix}"]
            # Bias.INPUT: no b_hh, i.e. a zero one (the d2l book's scratch cells)
            weights = [params.get(f"rnn.l{layer}.{name}{suffix}", np.zeros_like(b_ih)) for name in _WEIGHTS]
            outputs, final = run_direction(spec, weights, layer_input,
                                           tuple(part[index] for part in state), reverse=direction == 1)
            halves.append(outputs)
            for part, value in zip(new_state, final):
                part[index] = value
        layer_input = np.concatenate(halves, axis=-1)  # (T, N, D*H)
    features = last_features(spec, layer_input) if spec.readout is Readout.LAST else layer_input
    if masks is not None:
        features = features * masks[-1]
    out = features @ params["head.weight"].T + params["head.bias"]
    return out, tuple(np.stack(part) for part in new_state)


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
