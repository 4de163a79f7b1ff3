"""Dropout masks, decided once in NumPy so that every backend drops exactly the same units.

Inverted dropout with rate p = spec.dropout: a mask holds 0 (dropped) or 1/(1-p) (kept), so
the expected value of a masked input equals the input and evaluation needs no rescaling.
Masks act where PyTorch's and Gluon's multi-layer `dropout=` acts (on the inputs of layers
k >= 1) and on the head's input (Zaremba et al. 2014: the non-recurrent connections only):

    mask k-1 for k = 1 .. L-1   (T, N, D*H)   multiplies the inputs of layer k (layer k-1's outputs)
    last mask                   (T, N, D*H)   multiplies the head's input, Readout.SEQUENCE
                                (N, D*H)      the same for Readout.LAST (the features it reads)

A training step passes the masks with its batch to `Backend.to_device` (per step of a span, in
`Backend.train_span`'s batches; `forward_backward(..., masks)` for one batch) and to
`reference.forward(..., masks)`; without masks the model runs as in evaluation.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from seqcore.errors import SeqcoreError
from seqcore.model import seq2seq
from seqcore.model.spec import ModelSpec, Readout


def mask_shapes(spec: ModelSpec, num_steps: int, batch_size: int) -> list[tuple[int, ...]]:
    """The masks' shapes, in the order above; [] when spec.dropout is 0."""
    if spec.dropout == 0:
        return []
    width = spec.output_width
    shapes = [(num_steps, batch_size, width) for _ in range(spec.num_layers - 1)]
    head = (batch_size, width) if spec.readout is Readout.LAST else (num_steps, batch_size, width)
    return shapes + [head]


def draw_masks(spec: ModelSpec, rng: np.random.Generator, num_steps: int,
               batch_size: int) -> list[np.ndarray] | None:
    """float32 masks of 0 and 1/(1-p), drawn from `rng` in mask_shapes order; None when p is 0."""
    if spec.dropout == 0:
        return None
    keep = 1.0 - spec.dropout
    scale = np.float32(1.0 / keep)
    # U[0, 1) >= p keeps a unit with probability 1 - p.
    return [(rng.random(shape) >= spec.dropout).astype(np.float32) * scale
            for shape in mask_shapes(spec, num_steps, batch_size)]


def check_masks(spec: ModelSpec, masks: Sequence[np.ndarray] | None, num_steps: int,
                batch_size: int) -> list[np.ndarray] | None:
    """`masks` as float32 arrays after checking them against mask_shapes (None or [] -> None)."""
    if masks is None or len(masks) == 0:
        return None
    shapes = mask_shapes(spec, num_steps, batch_size)
    got = [np.shape(mask) for mask in masks]
    if got != shapes:
        raise SeqcoreError(f"Dropout masks of shapes {got} do not fit this model and batch, "
                           f"which take {shapes or 'none (dropout is 0)'}.")
    return [np.asarray(mask, dtype=np.float32) for mask in masks]


def check_batch_masks(spec: ModelSpec | seq2seq.Seq2SeqSpec, masks: Sequence[np.ndarray] | None,
                      inputs: Any) -> list[np.ndarray] | None:
    """`masks` as float32 arrays after checking them against the model and the batch `inputs`
    (an array, or a tuple whose first array is (T, N, ...)); an encoder-decoder's against
    seqcore.model.seq2seq.mask_shapes of its (source (T_src, N), lengths, decoder inputs (T_tgt, N))."""
    if isinstance(spec, seq2seq.Seq2SeqSpec):
        source, _, decoder_inputs = inputs
        seq2seq.split_masks(spec, masks, np.shape(source)[0], np.shape(decoder_inputs)[0], np.shape(source)[1])
        return None if masks is None or len(masks) == 0 else [np.asarray(mask, dtype=np.float32) for mask in masks]
    first = inputs[0] if isinstance(inputs, tuple) else inputs
    return check_masks(spec, masks, *np.shape(first)[:2])
