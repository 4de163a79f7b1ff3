"""NumPy reference of the encoder-decoder (seqcore.model.seq2seq): the oracle both backends meet.

Built on seqcore.model.reference's cell steps and stack loop, in whatever float dtype the
parameters have (float64 for finite differences). Shapes: source and decoder inputs (T, N) int
ids, time-major; each state part (L, N, H); logits (T, N, V_tgt); context (N, H).
`ReferenceTranslator` is the step model seqcore.jobs.decode searches over.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from seqcore.model import reference
from seqcore.model.seq2seq import Seq2SeqSpec, seq2seq_loss, split_masks
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


def decode(spec: Seq2SeqSpec, params: Mapping[str, np.ndarray], inputs: np.ndarray, context: np.ndarray,
           state: State, masks: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, State]:
    """Decoder inputs (T, N) ids, context (N, H), state -> logits (T, N, V_tgt), new state."""
    embedded = params["decoder.embedding.weight"][np.asarray(inputs, dtype=np.int64)]  # (T, N, E)
    repeated = np.broadcast_to(context, (embedded.shape[0],) + context.shape)  # (T, N, H)
    outputs, state = run_stack(spec, params, "decoder", np.concatenate([embedded, repeated], axis=-1),
                               state, masks)
    return outputs @ params["decoder.head.weight"].T + params["decoder.head.bias"], state


def forward(spec: Seq2SeqSpec, params: Mapping[str, np.ndarray], source: np.ndarray,
            source_valid: np.ndarray, decoder_inputs: np.ndarray,
            masks: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, State]:
    """Teacher forcing: logits (T_tgt, N, V_tgt) and the decoder's final state.

    source_valid (N,) is unused without attention: the encoder reads the padding too, as the book's.
    masks: seqcore.model.seq2seq.draw_masks's, or None to run without dropout.
    """
    encoder_masks, decoder_masks = split_masks(spec, masks, source.shape[0], decoder_inputs.shape[0],
                                               source.shape[1])
    outputs, state = encode(spec, params, source, encoder_masks)
    return decode(spec, params, decoder_inputs, outputs[-1], state, decoder_masks)


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
    """seqcore.jobs.decode's step model on the reference: the state is (context (B, H), decoder
    state parts (L, B, H)); rows are hypotheses."""

    def __init__(self, spec: Seq2SeqSpec, params: Mapping[str, np.ndarray]) -> None:
        self.spec, self.params = spec, params

    def start(self, source: np.ndarray, source_valid: np.ndarray) -> tuple:
        outputs, state = encode(self.spec, self.params, source)
        return (outputs[-1],) + state

    def step(self, tokens: np.ndarray, state: tuple) -> tuple[np.ndarray, tuple]:
        logits, decoder_state = decode(self.spec, self.params, np.asarray(tokens)[None], state[0], state[1:])
        return logits[0], (state[0],) + decoder_state

    def select(self, state: tuple, rows: np.ndarray) -> tuple:
        rows = np.asarray(rows, dtype=np.int64)
        return (state[0][rows],) + tuple(part[:, rows] for part in state[1:])
