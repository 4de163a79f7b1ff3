"""Generation: warm-up on the prefix, greedy and temperature choices, vocabulary checks."""
from __future__ import annotations

import numpy as np
import pytest

from seqcore.data.vocab import Vocab
from seqcore.errors import SeqcoreError
from seqcore.jobs.generate import choose_token, predict, predict_ids


class CountingBackend:
    """Logits that always favour (last input id + 1) mod V; records each forward's input shape."""

    def __init__(self, vocab_size: int):
        self.vocab_size, self.calls = vocab_size, []

    def begin_state(self, model, batch_size):
        return ("state", batch_size)

    def forward(self, model, inputs, state):
        self.calls.append(inputs.shape)
        logits = np.zeros(inputs.shape + (self.vocab_size,))
        for t, i in np.ndindex(inputs.shape):
            logits[t, i, (inputs[t, i] + 1) % self.vocab_size] = 5.0
        return logits, state


def test_greedy_and_temperature_choices() -> None:
    logits = np.array([0.0, 2.0, 1.0])
    assert choose_token(logits) == 1
    rng = np.random.default_rng(0)
    draws = np.bincount([choose_token(logits, 1.0, rng) for _ in range(20000)], minlength=3) / 20000
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(draws, expected, atol=0.015)
    cold = [choose_token(logits, 0.05, rng) for _ in range(200)]
    assert set(cold) == {1}  # a low temperature approaches greedy
    with pytest.raises(SeqcoreError, match="explicit random Generator"):
        choose_token(logits, 1.0)
    with pytest.raises(SeqcoreError, match="temperature"):
        choose_token(logits, -1.0)


def test_prefix_warms_up_in_one_call_then_one_token_per_step() -> None:
    backend = CountingBackend(5)
    ids = predict_ids(backend, None, [0, 1, 2], num_preds=4)
    assert ids == [0, 1, 2, 3, 4, 0, 1]
    assert backend.calls == [(3, 1), (1, 1), (1, 1), (1, 1), (1, 1)]


def test_predict_text_and_unknown_characters() -> None:
    vocab = Vocab(list("abcd"))
    backend = CountingBackend(len(vocab))
    text = predict(backend, None, vocab, "ab", 2)
    assert text.startswith("ab") and len(text) == 4
    with pytest.raises(SeqcoreError, match="outside the vocabulary: 'z'"):
        predict(backend, None, vocab, "az", 2)
    with pytest.raises(SeqcoreError, match="at least one token"):
        predict_ids(backend, None, [], 2)
