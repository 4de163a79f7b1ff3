"""NumPy reference of the encoder-decoder (seqcore.model.seq2seq): the oracle both backends meet.

Built on seqcore.model.reference's cell steps and stack loop, in whatever float dtype the
parameters have (float64 for finite differences). Shapes: source and decoder inputs (T, N) int
ids, time-major; each state part (L, N, H); encoder outputs (T_src, N, H); source valid lengths
(N,); logits (T_tgt, N, V_tgt); attention weights (T_tgt, N, T_src), row t the weights that made
step t's context. `ReferenceTranslator` is the step model seqcore.jobs.decode searches over.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from seqcore.model import reference
from seqcore.model.seq2seq import MASK_FILL, Attention, Seq2SeqSpec, seq2seq_loss, split_masks
from seqcore.model.spec import Loss

State = tuple[np.ndarray, ...]  # (h,) or (h, c), each (L, N, H)
_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def run_stack(spec: Seq2SeqSpec, params: Mapping[str, np.ndarray], stack: str, inputs: np.ndarray,
              state: State, masks: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, State]:
    """Layers of `stack` over inputs (T, N, I) from `state` -> top-layer outputs (T, N, H), final
    state. masks[k-1] (T, N, H) multiplies the inputs of layer k >= 1."""
    cell = spec.stack_spec()
    finals = []
    layer_input = inputs
    for layer in range(spec.num_layers):
        if masks is not None and layer > 0:
            layer_input = layer_input * masks[layer - 1]
        weights = [params[f"{stack}.rnn.l{layer}.{name}"] for name in _WEIGHTS]
        layer_input, final = reference.run_direction(cell, weights, layer_input,
                                                     tuple(part[layer] for part in state))
        finals.append(final)
    return layer_input, tuple(np.stack(parts) for parts in zip(*finals))


def begin_state(spec: Seq2SeqSpec, batch_size: int, dtype=np.float32) -> State:
    """The encoder's initial state: zeros, (L, N, H) per part."""
    shape = (spec.num_layers, batch_size, spec.hidden_size)
    return tuple(np.zeros(shape, dtype=dtype) for _ in range(spec.num_states))


def encode(spec: Seq2SeqSpec, params: Mapping[str, np.ndarray], source: np.ndarray,
           masks: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, State]:
    """source (T, N) ids -> encoder outputs (T, N, H) of the top layer, final state."""
    table = params["encoder.embedding.weight"]
    embedded = table[np.asarray(source, dtype=np.int64)]  # (T, N, E)
    return run_stack(spec, params, "encoder", embedded, begin_state(spec, embedded.shape[1], table.dtype), masks)


def masked_softmax(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """softmax over the last axis of scores (N, T_src) after writing MASK_FILL where j >= valid[n]
    (the book's masked_softmax: padded positions get weight 0, a row with valid 0 uniform weights)."""
    keep = np.arange(scores.shape[-1])[None, :] < np.asarray(valid)[:, None]
    filled = np.where(keep, scores, np.asarray(MASK_FILL, scores.dtype))
    return np.exp(reference.log_softmax(filled))


def attention_keys(spec: Seq2SeqSpec, params: Mapping[str, np.ndarray], encoded: np.ndarray) -> np.ndarray:
    """What a query meets, (T_src, N, H): W_k k_j for additive attention (once for all steps), k_j for dot."""
    if spec.attention is Attention.ADDITIVE:
        return encoded @ params["decoder.attention.key.weight"].T
    return encoded


def scores(spec: Seq2SeqSpec, params: Mapping[str, np.ndarray], query: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """query (N, H), attention_keys (T_src, N, H) -> scores (N, T_src)."""
    if spec.attention is Attention.ADDITIVE:
        features = np.tanh(query @ params["decoder.attention.query.weight"].T + keys)  # (T_src, N, H)
        return (features @ params["decoder.attention.score.weight"].T)[..., 0].T
    return np.einsum("nh,jnh->nj", query, keys) / np.asarray(math.sqrt(spec.hidden_size), query.dtype)


def attend(spec: Seq2SeqSpec, params: Mapping[str, np.ndarray], query: np.ndarray, keys: np.ndarray,
           encoded: np.ndarray, valid: np.ndarray,
           mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One step's context (N, H) and weights (N, T_src); mask (N, T_src) multiplies the weights
    before they weigh the values (dropout), the weights returned are those before it."""
    weights = masked_softmax(scores(spec, params, query, keys), valid)
    used = weights if mask is None else weights * mask
    return np.einsum("nj,jnh->nh", used, encoded), weights


def decode(spec: Seq2SeqSpec, params: Mapping[str, np.ndarray], inputs: np.ndarray, encoded: np.ndarray,
           source_valid: np.ndarray, state: State, masks: Sequence[np.ndarray] | None = None,
           weight_mask: np.ndarray | None = None) -> tuple[np.ndarray, State, np.ndarray | None]:
    """Decoder inputs (T, N) ids, encoder outputs (T_src, N, H), source valid lengths (N,), state ->
    logits (T, N, V_tgt), new state, attention weights (T, N, T_src) (None without attention).
    masks: the decoder's between-layer masks; weight_mask (T, N, T_src): the attention weights'."""
    embedded = params["decoder.embedding.weight"][np.asarray(inputs, dtype=np.int64)]  # (T, N, E)
    head = params["decoder.head.weight"].T, params["decoder.head.bias"]
    if not spec.attends:
        repeated = np.broadcast_to(encoded[-1], embedded.shape[:2] + encoded.shape[-1:])  # (T, N, H)
        outputs, state = run_stack(spec, params, "decoder", np.concatenate([embedded, repeated], axis=-1),
                                   state, masks)
        return outputs @ head[0] + head[1], state, None
    keys = attention_keys(spec, params, encoded)
    outputs, weights = [], []
    for t in range(embedded.shape[0]):
        # The query is the top layer's h before this step: at t = 0 the encoder's final one.
        context, step_weights = attend(spec, params, state[0][-1], keys, encoded, source_valid,
                                       None if weight_mask is None else weight_mask[t])
        step_input = np.concatenate([embedded[t], context], axis=-1)[None]  # (1, N, E + H)
        output, state = run_stack(spec, params, "decoder", step_input, state,
                                  None if masks is None else [mask[t:t + 1] for mask in masks])
        outputs.append(output[0])
        weights.append(step_weights)
    return np.stack(outputs) @ head[0] + head[1], state, np.stack(weights)


def forward_weights(spec: Seq2SeqSpec, params: Mapping[str, np.ndarray], source: np.ndarray,
                    source_valid: np.ndarray, decoder_inputs: np.ndarray,
                    masks: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, State, np.ndarray | None]:
    """Teacher forcing: logits (T_tgt, N, V_tgt), the decoder's final state and the attention
    weights (T_tgt, N, T_src), None without attention.

    masks: seqcore.model.seq2seq.draw_masks's, or None to run without dropout.
    """
    split = split_masks(spec, masks, source.shape[0], decoder_inputs.shape[0], source.shape[1])
    encoded, state = encode(spec, params, source, split.encoder)
    return decode(spec, params, decoder_inputs, encoded, source_valid, state, split.decoder, split.attention)


def forward(spec: Seq2SeqSpec, params: Mapping[str, np.ndarray], source: np.ndarray,
            source_valid: np.ndarray, decoder_inputs: np.ndarray,
            masks: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, State]:
    """forward_weights without the weights: logits (T_tgt, N, V_tgt) and the decoder's final state."""
    logits, state, _ = forward_weights(spec, params, source, source_valid, decoder_inputs, masks)
    return logits, state


def token_mask(valid: np.ndarray, num_steps: int, dtype=np.float32) -> np.ndarray:
    """(T, N): 1 where t < valid[n] (a real token), 0 on padding."""
    return (np.arange(num_steps)[:, None] < np.asarray(valid)[None, :]).astype(dtype)


def masked_loss(kind: Loss | str, logits: np.ndarray, targets: np.ndarray, valid: np.ndarray) -> float:
    """Loss.MASKED: sum of cross-entropy over the real tokens / their number (d2l 1.0's loss);
    Loss.MASKED_D2L: the mean over all T*N positions of cross-entropy x mask (d2l 0.17's
    MaskedSoftmaxCELoss, averaged over the batch), which pads dilute."""
    kind = seq2seq_loss(kind)
    losses = reference.cross_entropies(logits, targets)  # (T, N)
    mask = token_mask(valid, targets.shape[0], losses.dtype)
    if kind is Loss.MASKED:
        return float((losses * mask).sum() / mask.sum())
    return float((losses * mask).mean())


class ReferenceTranslator:
    """seqcore.jobs.decode's step model on the reference: the state is (encoder outputs
    (T_src, B, H), source valid lengths (B,), decoder state parts (L, B, H)); rows are hypotheses."""

    def __init__(self, spec: Seq2SeqSpec, params: Mapping[str, np.ndarray]) -> None:
        self.spec, self.params = spec, params

    def start(self, source: np.ndarray, source_valid: np.ndarray) -> tuple:
        encoded, state = encode(self.spec, self.params, source)
        return (encoded, np.asarray(source_valid)) + state

    def step(self, tokens: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple, np.ndarray | None]:
        encoded, valid = state[:2]
        logits, decoder_state, weights = decode(self.spec, self.params, np.asarray(tokens)[None], encoded,
                                                valid, state[2:])
        return logits[0], (encoded, valid) + decoder_state, None if weights is None else weights[0]

    def select(self, state: tuple, rows: np.ndarray) -> tuple:
        rows = np.asarray(rows, dtype=np.int64)
        return (state[0][:, rows], state[1][rows]) + tuple(part[:, rows] for part in state[2:])
