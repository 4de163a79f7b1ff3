"""Greedy decoding and beam search (seqcore.jobs.decode) with the NumPy reference as the model."""
from __future__ import annotations

import math

import numpy as np
import pytest

from seqcore.errors import SeqcoreError
from seqcore.jobs.decode import Hypothesis, beam_candidates, beam_search, greedy, translate
from seqcore.model.seq2seq import Seq2SeqSpec, init_params
from seqcore.model.seq2seq_reference import ReferenceTranslator
from seqcore.model.spec import Cell, Impl
from tests.translation_cases import BOS, EOS, HANDMADE_SOURCE, TABLE, A, B, handmade

VALID = np.array([3])


def random_model(seed: int, cell: Cell = Cell.GRU) -> ReferenceTranslator:
    spec = Seq2SeqSpec(cell=cell, impl=Impl.SCRATCH, source_vocab_size=9, target_vocab_size=7,
                       embed_size=4, hidden_size=5, num_layers=2)
    # Large weights make confident, varied predictions: some sentences end early, some run on.
    params = {k: 3 * v for k, v in init_params(spec, "uniform", seed).items()}
    return ReferenceTranslator(spec, params)


def test_handmade_greedy_is_wrong_and_beam_finds_the_better_translation() -> None:
    spec, params = handmade()
    model = ReferenceTranslator(spec, params)
    (first,) = greedy(model, HANDMADE_SOURCE, VALID, BOS, EOS, max_len=5)
    assert first == Hypothesis((A,), pytest.approx(math.log(0.5 * 0.35), abs=1e-4), True)
    best = beam_search(model, HANDMADE_SOURCE, VALID, BOS, EOS, max_len=5, beam_size=2)
    assert best.tokens == (B,) and best.finished
    assert best.log_prob == pytest.approx(math.log(TABLE[BOS][B] * TABLE[B][EOS]), abs=1e-4)
    assert best.log_prob > first.log_prob + 0.5
    # Both extensions end at step 2, so the beam holds exactly these two, 'b' first.
    candidates = beam_candidates(model, HANDMADE_SOURCE, VALID, BOS, EOS, max_len=5, beam_size=2)
    assert [c.tokens for c in candidates] == [(B,), (A,)]


def test_beam_of_one_is_greedy() -> None:
    for seed in range(12):
        model = random_model(seed, Cell.LSTM if seed % 2 else Cell.GRU)
        source = np.random.default_rng(seed).integers(0, 9, (4, 5))
        valid = np.full(5, 4)
        batched = greedy(model, source, valid, BOS, EOS, max_len=8)
        for n in range(5):
            # One sentence at a time on both sides: float32 matmuls of other shapes round differently.
            (alone,) = greedy(model, source[:, [n]], valid[[n]], BOS, EOS, max_len=8)
            assert beam_search(model, source[:, [n]], valid[[n]], BOS, EOS, max_len=8, beam_size=1) == alone
            assert alone.tokens == batched[n].tokens
            assert alone.log_prob == pytest.approx(batched[n].log_prob, abs=1e-5)


def test_a_wider_beam_never_finds_a_less_probable_best_when_unnormalised() -> None:
    """With alpha 0 the ranking is log P. Not a theorem (K better prefixes can push greedy's out of
    the beam and then end worse), but true on these seeded sentences, and a search ranking by the
    wrong score or dropping finished hypotheses fails it."""
    model = random_model(3)
    source = np.random.default_rng(7).integers(0, 9, (4, 20))
    found = greedy(model, source, np.full(20, 4), BOS, EOS, max_len=6)
    better = 0
    for n, first in enumerate(found):
        best = beam_search(model, source[:, [n]], np.array([4]), BOS, EOS, max_len=6, beam_size=4, alpha=0.0)
        assert best.log_prob >= first.log_prob - 1e-6  # 1e-6: batched and single float32 steps
        better += best.log_prob > first.log_prob + 1e-3
    assert better > 0  # the test sees sentences where the beam helps


def test_greedy_stops_at_eos_or_the_length_limit() -> None:
    spec, params = handmade()
    model = ReferenceTranslator(spec, params)
    (cut,) = greedy(model, HANDMADE_SOURCE, VALID, BOS, EOS, max_len=1)
    assert cut.tokens == (A,) and not cut.finished and cut.length == 1
    (done,) = greedy(model, HANDMADE_SOURCE, VALID, BOS, EOS, max_len=9)
    assert done.finished and done.length == 2  # 'a' and <eos>
    candidates = beam_candidates(model, HANDMADE_SOURCE, VALID, BOS, EOS, max_len=1, beam_size=3)
    # step 1 keeps a, b and <eos>; <eos> finishes at once, a and b are cut unfinished
    assert [(c.tokens, c.finished) for c in candidates] == [((), True), ((A,), False), ((B,), False)]


def test_length_normalisation_ranks_by_log_prob_over_length_to_the_alpha() -> None:
    short = Hypothesis((4,), math.log(0.2), True)  # L = 2
    long = Hypothesis((4, 5, 6), math.log(0.12), True)  # L = 4
    assert short.score(0.0) > long.score(0.0)
    assert long.score(0.75) > short.score(0.75)  # -2.12 / 4^0.75 > -1.61 / 2^0.75
    assert short.score(0.75) == pytest.approx(math.log(0.2) / 2 ** 0.75)


@pytest.mark.parametrize("call, fragment", [
    (lambda m: greedy(m, HANDMADE_SOURCE, VALID, BOS, EOS, max_len=0), "max length must be a positive integer"),
    (lambda m: beam_search(m, HANDMADE_SOURCE, VALID, BOS, EOS, 5, beam_size=0), "beam size must be a positive"),
    (lambda m: beam_search(m, np.zeros((3, 2), int), np.array([3, 3]), BOS, EOS, 5, 2), "one sentence at a time"),
])
def test_bad_arguments_are_one_sentence(call, fragment: str) -> None:
    spec, params = handmade()
    with pytest.raises(SeqcoreError, match=fragment):
        call(ReferenceTranslator(spec, params))


def test_a_step_model_with_wrong_logits_is_caught() -> None:
    class Broken:
        def start(self, source, valid):
            return None

        def step(self, tokens, state):
            return np.zeros((len(tokens) + 1, 4)), state, None

        def select(self, state, rows):
            return state

    with pytest.raises(SeqcoreError, match=r"logits of shape \(2, 4\), not \(1, V\)"):
        greedy(Broken(), HANDMADE_SOURCE, VALID, BOS, EOS, 3)


def test_translate_dispatches_on_the_beam_size() -> None:
    model = random_model(5)
    source = np.random.default_rng(2).integers(0, 9, (4, 3))
    valid = np.full(3, 4)
    assert translate(model, source, valid, BOS, EOS, 6) == greedy(model, source, valid, BOS, EOS, 6)
    wide = translate(model, source, valid, BOS, EOS, 6, beam_size=3, alpha=0.5)
    assert wide == [beam_search(model, source[:, [n]], valid[[n]], BOS, EOS, 6, 3, 0.5) for n in range(3)]
