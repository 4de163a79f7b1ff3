"""Generation: warm-up on the prefix, greedy and temperature choices, vocabulary checks (on the
NumPy fake backend, tests/fakes.py, with weights that count)."""
from __future__ import annotations

import numpy as np
import pytest

from seqcore.data.vocab import Vocab
from seqcore.errors import SeqcoreError
from seqcore.jobs.generate import choose_token, predict, predict_ids
from seqcore.model.params import param_shapes
from seqcore.model.spec import ModelSpec
from tests.fakes import NumpyBackend


def counting(vocab_size: int) -> tuple[NumpyBackend, object]:
    """The fake backend and an RNN whose weights make it favour (last input id + 1) mod V: the
    one-hot input saturates its own hidden unit (tanh(6) ~ 1) and the head maps unit i to id i + 1."""
    spec = ModelSpec(cell="rnn", impl="scratch", input_size=vocab_size, hidden_size=vocab_size,
                     output_size=vocab_size)
    params = {name: np.zeros(shape, np.float32) for name, shape in param_shapes(spec).items()}
    params["rnn.l0.weight_ih"] = 6 * np.eye(vocab_size, dtype=np.float32)
    params["head.weight"] = 5 * np.roll(np.eye(vocab_size, dtype=np.float32), 1, axis=0)  # row i + 1 reads unit i
    fake = NumpyBackend()
    return fake, fake.build_model(spec, params, "cpu")


def forwards(fake: NumpyBackend) -> list[tuple[int, ...]]:
    return [call[1] for call in fake.calls if call[0] == "forward"]


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
    backend, model = counting(5)
    ids = predict_ids(backend, model, [0, 1, 2], num_preds=4)
    assert ids == [0, 1, 2, 3, 4, 0, 1]
    assert forwards(backend) == [(3, 1), (1, 1), (1, 1), (1, 1), (1, 1)]


def test_predict_text_and_unknown_characters() -> None:
    vocab = Vocab(list("abcd"))
    backend, model = counting(len(vocab))
    text = predict(backend, model, vocab, "ab", 2)
    following = vocab.to_tokens([(vocab["b"] + 1) % len(vocab), (vocab["b"] + 2) % len(vocab)])
    assert text == "ab" + "".join(following)
    with pytest.raises(SeqcoreError, match="outside the vocabulary: 'z'"):
        predict(backend, model, vocab, "az", 2)
    with pytest.raises(SeqcoreError, match="at least one token"):
        predict_ids(backend, model, [], 2)
