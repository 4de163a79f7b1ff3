"""Additive (Bahdanau) and scaled dot-product attention on MXNet Gluon (seqcore.model.seq2seq's
`attention`; the NumPy oracle is seqcore.model.seq2seq_reference.attend).

Time-major like the rest of the backend: one decoder step's query (N, H) meets keys and values
(T_src, N, H), the encoder's top-layer outputs, and reads the source valid lengths (N,).
`Attention` holds the additive weights under their canonical names (query, key, score) as Dense
layers without bias (Dense weights are (out, in), like the canonical ones); the dot-product kind
has none. The weights' dropout mask, when training, comes from NumPy
(seqcore.model.seq2seq.draw_masks), never from gluon.nn.Dropout.
"""
from __future__ import annotations

import math

import mxnet as mx
import numpy as np
from mxnet import gluon, npx

from seqcore.model.seq2seq import ATTENTION_WEIGHTS, MASK_FILL, Attention as Kind


def masked_softmax(scores, valid):
    """softmax over the last axis of scores (N, T_src) after writing MASK_FILL where j >= valid[n]
    (the book's masked_softmax, through npx.sequence_mask as the book's MXNet edition writes it).

    Not mx.np.where(keep, scores, MASK_FILL): in MXNet 1.9.1 np.where with a scalar operand sends
    the gradient to the positions where the condition is False (apache/mxnet#17893; the fix,
    #17899, is not in 1.x), which zeroed every attention weight's gradient here."""
    return npx.softmax(npx.sequence_mask(scores, valid.astype(np.float32), use_sequence_length=True,
                                         value=MASK_FILL, axis=1), axis=-1)


class Attention(gluon.Block):
    """One decoder step's attention: query (N, H) -> context (N, H) and weights (N, T_src)."""

    def __init__(self, kind: Kind | str, hidden_size: int, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.hidden_size = Kind(kind), hidden_size
        if self.kind is Kind.ADDITIVE:  # the book's sizes: query, key and hidden all H
            with self.name_scope():
                self.query = gluon.nn.Dense(hidden_size, use_bias=False, flatten=False, in_units=hidden_size)
                self.key = gluon.nn.Dense(hidden_size, use_bias=False, flatten=False, in_units=hidden_size)
                self.score = gluon.nn.Dense(1, use_bias=False, flatten=False, in_units=hidden_size)

    def parameter_map(self) -> dict[str, gluon.Parameter]:
        """Parameters keyed 'query.weight' ... as in seqcore.model.seq2seq, without 'decoder.attention.'."""
        if self.kind is not Kind.ADDITIVE:
            return {}
        return {f"{name}.weight": getattr(self, name).weight for name in ATTENTION_WEIGHTS}

    def keys(self, encoded):
        """What every step's query meets, (T_src, N, H): W_k k_j (additive, once per batch) or k_j."""
        return self.key(encoded) if self.kind is Kind.ADDITIVE else encoded

    def forward(self, query, keys, values, valid, mask=None):
        """query (N, H), keys = self.keys(values), values (T_src, N, H), valid (N,) -> context (N, H),
        weights (N, T_src) before `mask` (N, T_src), the dropout mask that multiplies them."""
        if self.kind is Kind.ADDITIVE:
            features = mx.np.tanh(mx.np.expand_dims(self.query(query), 0) + keys)  # (T_src, N, H)
            scores = self.score(features)[..., 0].T  # (N, T_src)
        else:
            scores = (mx.np.expand_dims(query, 0) * keys).sum(axis=-1).T / math.sqrt(self.hidden_size)
        weights = masked_softmax(scores, valid)
        used = weights if mask is None else weights * mask
        return (mx.np.expand_dims(used.T, -1) * values).sum(axis=0), weights
