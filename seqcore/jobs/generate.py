"""Text generation from a trained language model, on any backend.

The prefix warms the state up (its outputs are ignored but for the last step's), then each new
token is chosen from the last step's logits: the argmax when temperature is 0 (greedy), else a
draw from softmax(logits / temperature) with an explicit Generator, so runs are repeatable.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from seqcore.backend import Backend, Model
from seqcore.errors import SeqcoreError


def choose_token(logits: np.ndarray, temperature: float = 0.0,
                 rng: Optional[np.random.Generator] = None) -> int:
    """Greedy (temperature 0) or temperature sampling from a (V,) logit vector."""
    if temperature < 0:
        raise SeqcoreError(f"temperature must be 0 (greedy) or positive, got {temperature}.")
    if temperature == 0:
        return int(np.argmax(logits))
    if rng is None:
        raise SeqcoreError("Sampling with a temperature needs an explicit random Generator.")
    scaled = logits.astype(np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    return int(rng.choice(probs.size, p=probs / probs.sum()))


def predict_ids(backend: Backend, model: Model, prefix_ids: Sequence[int], num_preds: int,
                temperature: float = 0.0, rng: Optional[np.random.Generator] = None) -> list[int]:
    """Continue `prefix_ids` by `num_preds` ids; returns prefix and continuation together."""
    if len(prefix_ids) == 0:
        raise SeqcoreError("The prefix must hold at least one token.")
    state = backend.begin_state(model, batch_size=1)
    # Warm-up: the whole prefix in one call, (T, 1) ids -> logits (T, 1, V).
    logits, state = backend.forward(model, np.asarray(prefix_ids, dtype=np.int64)[:, None], state)
    ids = list(prefix_ids)
    for _ in range(num_preds):
        ids.append(choose_token(logits[-1, 0], temperature, rng))
        logits, state = backend.forward(model, np.asarray([[ids[-1]]], dtype=np.int64), state)
    return ids


def predict(backend: Backend, model: Model, vocab, prefix: str, num_preds: int, token: str = "char",
            temperature: float = 0.0, rng: Optional[np.random.Generator] = None) -> str:
    """Continuation of `prefix` (the text the d2l book prints after training).

    token: 'char' reads the prefix character by character, 'word' splits it on whitespace.
    """
    tokens = list(prefix) if token == "char" else prefix.split()
    unknown = vocab.unknown(tokens)
    if unknown:
        what = "characters" if token == "char" else "words"
        shown = ", ".join(repr(t) for t in unknown)
        raise SeqcoreError(f"The prefix {prefix!r} has {what} outside the vocabulary: {shown}.")
    ids = predict_ids(backend, model, vocab.encode(tokens).tolist(), num_preds, temperature, rng)
    return ("" if token == "char" else " ").join(vocab.to_tokens(ids))
