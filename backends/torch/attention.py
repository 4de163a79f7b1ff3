"""Additive (Bahdanau) and scaled dot-product attention on PyTorch (seqcore.model.seq2seq's
`attention`; the NumPy oracle is seqcore.model.seq2seq_reference.attend).

Time-major like the rest of the backend: one decoder step's query (N, H) meets keys and values
(T_src, N, H), the encoder's top-layer outputs, and reads the source valid lengths (N,).
`Attention` holds the additive weights under their canonical names (query, key, score); the
dot-product kind has none. The weights' dropout mask, when training, comes from NumPy
(seqcore.model.seq2seq.draw_masks), never from nn.Dropout.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from seqcore.model.seq2seq import ATTENTION_WEIGHTS, MASK_FILL, Attention as Kind


def masked_softmax(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """softmax over the last axis of scores (N, T_src) after writing MASK_FILL where j >= valid[n]
    (the book's masked_softmax)."""
    steps = torch.arange(scores.shape[-1], device=scores.device)
    keep = steps[None, :] < valid[:, None]  # (N, T_src)
    return torch.softmax(scores.masked_fill(~keep, MASK_FILL), dim=-1)


class Attention(nn.Module):
    """One decoder step's attention: query (N, H) -> context (N, H) and weights (N, T_src)."""

    def __init__(self, kind: Kind | str, hidden_size: int) -> None:
        super().__init__()
        self.kind, self.hidden_size = Kind(kind), hidden_size
        if self.kind is Kind.ADDITIVE:  # the book's sizes: query, key and hidden all H
            self.query = nn.Linear(hidden_size, hidden_size, bias=False)
            self.key = nn.Linear(hidden_size, hidden_size, bias=False)
            self.score = nn.Linear(hidden_size, 1, bias=False)

    def parameter_map(self) -> dict[str, nn.Parameter]:
        """Parameters keyed 'query.weight' ... as in seqcore.model.seq2seq, without 'decoder.attention.'."""
        if self.kind is not Kind.ADDITIVE:
            return {}
        return {f"{name}.weight": getattr(self, name).weight for name in ATTENTION_WEIGHTS}

    def keys(self, encoded: torch.Tensor) -> torch.Tensor:
        """What every step's query meets, (T_src, N, H): W_k k_j (additive, once per batch) or k_j."""
        return self.key(encoded) if self.kind is Kind.ADDITIVE else encoded

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, valid: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """query (N, H), keys = self.keys(values), values (T_src, N, H), valid (N,) -> context (N, H),
        weights (N, T_src) before `mask` (N, T_src), the dropout mask that multiplies them."""
        if self.kind is Kind.ADDITIVE:
            features = torch.tanh(self.query(query)[None] + keys)  # (T_src, N, H)
            scores = self.score(features)[..., 0].t()  # (N, T_src)
        else:
            scores = torch.einsum("nh,jnh->nj", query, keys) / math.sqrt(self.hidden_size)
        weights = masked_softmax(scores, valid)
        used = weights if mask is None else weights * mask
        return torch.einsum("nj,jnh->nh", used, values), weights
