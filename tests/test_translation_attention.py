"""Attention in the encoder-decoder (issue 20) on the NumPy reference, its decoding and its figures.

What the book's AdditiveAttention / DotProductAttention / masked_softmax / Seq2SeqAttentionDecoder
do (d2l 0.17.6 and 1.0.3), checked against literal transcriptions; the first query; dropout on the
weights; an independent route through the plain decoder; mutants of the decoder that the
backends' 2e-5 / 1e-5 comparisons (tests/test_translation_backends.py) would catch; greedy and
beam search returning each hypothesis' weights; the heat maps.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seqcore.errors import SeqcoreError
from seqcore.jobs.decode import beam_search, greedy
from seqcore.jobs.figures import attention_difference, plot_attention, plot_attention_pair
from seqcore.model import reference as lm_reference
from seqcore.model import seq2seq_reference as reference
from seqcore.model.seq2seq import (Attention, Seq2SeqSpec, draw_masks, init_params, mask_shapes, param_shapes,
                                   spec_from_dict, split_masks, stack_params)
from seqcore.model.spec import Cell, Impl, InputKind, ModelSpec
from tests.test_translation_backends import FORWARD_ATOL, WEIGHTS_ATOL  # what a backend is allowed
from tests.translation_cases import (BATCH, BOS, EOS, HIDDEN, SOURCE_STEPS, SOURCE_VALID, TARGET_STEPS,
                                     attention_cases, case_data, case_masks, spec_for)

CASES = dict(attention_cases())


def run(spec, data, masks=None, **changes):
    """forward_weights on the case's batch (changes: another source_valid ...)."""
    args = {"source": data["source"], "source_valid": data["source_valid"], "decoder_inputs": data["decoder_inputs"],
            **changes}
    return reference.forward_weights(spec, data["params"], args["source"], args["source_valid"],
                                     args["decoder_inputs"], masks)


def test_spec_round_trips_and_lays_out_the_additive_weights() -> None:
    additive = spec_for(Cell.LSTM, Impl.CONCISE, 2, 0.3, attention=Attention.ADDITIVE)
    data = json.loads(json.dumps(additive.to_dict()))
    assert data["attention"] == "additive" and spec_from_dict(data) == additive and additive.attends
    assert not spec_for(Cell.GRU, Impl.SCRATCH, 1).attends
    shapes = param_shapes(additive)
    assert [(k, v) for k, v in shapes.items() if "attention" in k] == [
        ("decoder.attention.query.weight", (HIDDEN, HIDDEN)), ("decoder.attention.key.weight", (HIDDEN, HIDDEN)),
        ("decoder.attention.score.weight", (1, HIDDEN))]
    assert list(shapes)[-2:] == ["decoder.head.weight", "decoder.head.bias"]
    dot = spec_for(Cell.LSTM, Impl.CONCISE, 2, attention=Attention.DOT)
    plain = spec_for(Cell.LSTM, Impl.CONCISE, 2)
    assert param_shapes(dot) == param_shapes(plain)  # dot attention has no parameters
    first = "decoder.rnn.l0.weight_ih"
    assert shapes[first] == param_shapes(plain)[first] == (4 * HIDDEN, 3 + HIDDEN)  # embedding, then context
    # Every nn.Linear here reads H features: PyTorch's default bound 1/sqrt(H); Glorot on whole matrices.
    uniform, xavier = init_params(additive, "uniform", 2), init_params(additive, "xavier", 2)
    for drawn in (uniform, xavier, init_params(additive, "normal", 2)):
        assert {k: v.shape for k, v in drawn.items()} == shapes
    for name in ("query", "key", "score"):
        key = f"decoder.attention.{name}.weight"
        assert np.abs(uniform[key]).max() <= 1 / math.sqrt(HIDDEN)
        rows, columns = shapes[key]
        assert np.abs(xavier[key]).max() <= math.sqrt(6 / (rows + columns))


def test_masks_add_one_for_the_weights() -> None:
    spec = spec_for(Cell.GRU, Impl.SCRATCH, 2, 0.5, attention=Attention.DOT)
    assert mask_shapes(spec, 4, 6, 2) == [(4, 2, HIDDEN), (6, 2, HIDDEN), (6, 2, 4)]
    one_layer = spec_for(Cell.GRU, Impl.SCRATCH, 1, 0.5, attention=Attention.ADDITIVE)
    assert mask_shapes(one_layer, 4, 6, 2) == [(6, 2, 4)]  # the book's attention dropout acts with one layer too
    assert mask_shapes(spec_for(Cell.GRU, Impl.SCRATCH, 1, 0.5), 4, 6, 2) == []
    masks = draw_masks(spec, np.random.default_rng(0), 4, 6, 2)
    encoder, decoder, weights = split_masks(spec, masks, 4, 6, 2)
    assert [m.shape for m in encoder] == [(4, 2, HIDDEN)] and [m.shape for m in decoder] == [(6, 2, HIDDEN)]
    assert weights.shape == (6, 2, 4)
    assert split_masks(one_layer, draw_masks(one_layer, np.random.default_rng(0), 4, 6, 2), 4, 6, 2)[:2] == (None, None)
    with pytest.raises(SeqcoreError, match="do not fit this encoder-decoder"):
        split_masks(spec, masks[:2], 4, 6, 2)


def books_masked_softmax(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """d2l's masked_softmax for (N, 1, T) scores and 1-D valid lengths, transcribed: repeat the
    lengths per query, write -1e6 past them in a flattened copy, softmax the last axis."""
    X = scores[:, None, :].astype(np.float64)
    lengths = np.repeat(valid, X.shape[1])
    flat = X.reshape(-1, X.shape[-1]).copy()
    flat[np.arange(flat.shape[1])[None, :] >= lengths[:, None]] = -1e6
    e = np.exp(flat - flat.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).reshape(X.shape)[:, 0]


def test_masked_softmax_is_the_books() -> None:
    scores = np.random.default_rng(0).normal(0, 3, (4, 5)).astype(np.float32)
    valid = np.array([5, 2, 1, 0])
    weights = reference.masked_softmax(scores, valid)
    np.testing.assert_allclose(weights, books_masked_softmax(scores, valid), atol=1e-7)
    assert (weights[1, 2:] == 0).all() and weights[2, 0] == 1 and (weights[2, 1:] == 0).all()
    np.testing.assert_allclose(weights[3], np.full(5, 0.2), atol=1e-7)  # valid 0: -1e6 everywhere, uniform
    np.testing.assert_allclose(weights.sum(axis=-1), 1, atol=1e-6)


def test_scores_are_the_books_formulas() -> None:
    spec = CASES["gru-additive-scratch-l2"]
    params = case_data(spec)["params"]
    rng = np.random.default_rng(1)
    query, encoded = rng.standard_normal((BATCH, HIDDEN)), rng.standard_normal((SOURCE_STEPS, BATCH, HIDDEN))
    got = reference.scores(spec, params, query, reference.attention_keys(spec, params, encoded))
    W_q, W_k = params["decoder.attention.query.weight"], params["decoder.attention.key.weight"]
    w_v = params["decoder.attention.score.weight"][0]
    want = [[w_v @ np.tanh(W_q @ query[n] + W_k @ encoded[j, n]) for j in range(SOURCE_STEPS)] for n in range(BATCH)]
    np.testing.assert_allclose(got, want, atol=1e-12)
    dot = CASES["gru-dot-scratch-l2"]
    got = reference.scores(dot, params, query, reference.attention_keys(dot, params, encoded))
    want = [[query[n] @ encoded[j, n] / math.sqrt(HIDDEN) for j in range(SOURCE_STEPS)] for n in range(BATCH)]
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("name", ["lstm-additive-scratch-l2", "gru-dot-scratch-l2"])
def test_weights_sum_to_one_are_zero_on_padding_and_start_from_the_encoders_final_h(name: str) -> None:
    spec = CASES[name]
    data = case_data(spec)
    _, _, weights = run(spec, data)
    assert weights.shape == (TARGET_STEPS, BATCH, SOURCE_STEPS)
    np.testing.assert_allclose(weights.sum(axis=-1), 1, atol=1e-6)
    padding = np.arange(SOURCE_STEPS)[None, :] >= np.array(SOURCE_VALID)[:, None]  # (N, T_src)
    assert padding.any() and (weights[:, padding] == 0).all()
    encoded, state = reference.encode(spec, data["params"], data["source"])
    keys = reference.attention_keys(spec, data["params"], encoded)
    first = reference.masked_softmax(reference.scores(spec, data["params"], state[0][-1], keys), data["source_valid"])
    np.testing.assert_allclose(weights[0], first, atol=1e-7)  # the first query: the encoder's final top-layer h
    for wrong in [state[0][0]] + ([state[1][-1]] if spec.cell is Cell.LSTM else []):  # bottom layer, LSTM's c
        other = reference.masked_softmax(reference.scores(spec, data["params"], wrong, keys), data["source_valid"])
        assert np.abs(other - weights[0]).max() > 100 * WEIGHTS_ATOL


def test_dropout_multiplies_the_weights_and_the_reported_weights_are_before_it() -> None:
    spec = CASES["gru-additive-scratch-l1-dropout"]  # one layer: the weights' mask is the only one
    data, masks = case_data(spec), case_masks(spec)
    assert [m.shape for m in masks] == [(TARGET_STEPS, BATCH, SOURCE_STEPS)]
    plain_logits, _, plain_weights = run(spec, data)
    ones = [np.ones_like(masks[0])]
    np.testing.assert_array_equal(run(spec, data, ones)[0], plain_logits)
    logits, _, weights = run(spec, data, masks)
    assert np.abs(logits - plain_logits).max() > 1e-3
    np.testing.assert_array_equal(weights[0], plain_weights[0])  # step 0's query is the encoder's: not dropped
    assert np.abs(weights[1:] - plain_weights[1:]).max() > 1e-4  # later queries saw dropped contexts


def test_uniform_attention_is_the_plain_decoder_fed_the_mean_of_the_valid_outputs() -> None:
    """With w_v = 0 every score is 0, so the weights are uniform over the valid positions and the
    context is their mean: the decoder must then equal seqcore.model.reference's DENSE language
    model fed [embedding, that mean] per step, started from the encoder's final state."""
    spec = CASES["lstm-additive-scratch-l1"]
    data = case_data(spec)
    params = {**data["params"], "decoder.attention.score.weight": np.zeros((1, HIDDEN), np.float32)}
    logits, _, weights = reference.forward_weights(spec, params, data["source"], data["source_valid"],
                                                   data["decoder_inputs"])
    valid = np.array(SOURCE_VALID)
    np.testing.assert_allclose(weights[2, 1], [0.5, 0.5, 0, 0], atol=1e-7)  # sentence 1 has 2 real tokens
    encoded, state = reference.encode(spec, params, data["source"])
    keep = (np.arange(SOURCE_STEPS)[:, None] < valid[None, :])[..., None]  # (T_src, N, 1)
    mean = (encoded * keep).sum(axis=0) / valid[:, None]  # (N, H)
    lm = ModelSpec(cell="lstm", impl="scratch", input_kind=InputKind.DENSE, input_size=spec.embed_size + HIDDEN,
                   hidden_size=HIDDEN, output_size=spec.target_vocab_size)
    lm_params = {f"rnn.{k}": v for k, v in stack_params(params, "decoder").items()}
    lm_params.update({"head.weight": params["decoder.head.weight"], "head.bias": params["decoder.head.bias"]})
    embedded = params["decoder.embedding.weight"][data["decoder_inputs"]]
    features = np.concatenate([embedded, np.broadcast_to(mean, embedded.shape[:2] + (HIDDEN,))], axis=-1)
    want, _ = lm_reference.forward(lm, lm_params, features, state)
    np.testing.assert_allclose(logits, want, atol=1e-6)


# ---- mutants: decoders with one plausible mistake each, built from the reference's own pieces ----

def mutant_decode(spec, params, data, mutation: str | None):
    """The attending decoder re-assembled from reference.attend / run_stack, with `mutation`:
    None (the reference's decoder, to prove the harness), 'no-mask' (the valid lengths ignored),
    'current-state' (the query from the state this step makes, fed the previous step's context,
    in place of the state before the step), 'stale' (the encoder's final state as every step's
    query), 'bottom-layer' (the query from layer 0), 'cell-state' (an LSTM's c as the query)."""
    encoded, state = reference.encode(spec, params, data["source"])
    keys = reference.attention_keys(spec, params, encoded)
    valid = np.full(BATCH, SOURCE_STEPS) if mutation == "no-mask" else data["source_valid"]
    embedded = params["decoder.embedding.weight"][data["decoder_inputs"]]
    query_of = {"bottom-layer": lambda s: s[0][0], "cell-state": lambda s: s[-1][-1]}.get(mutation, lambda s: s[0][-1])
    first = state
    context = reference.attend(spec, params, query_of(state), keys, encoded, valid)[0]
    outputs, weights = [], []
    for t in range(TARGET_STEPS):
        query = query_of(first if mutation == "stale" else state)
        if mutation == "current-state":
            query = reference.run_stack(spec, params, "decoder",
                                        np.concatenate([embedded[t], context], axis=-1)[None], state)[1][0][-1]
        context, step_weights = reference.attend(spec, params, query, keys, encoded, valid)
        output, state = reference.run_stack(spec, params, "decoder",
                                            np.concatenate([embedded[t], context], axis=-1)[None], state)
        outputs.append(output[0])
        weights.append(step_weights)
    return np.stack(outputs) @ params["decoder.head.weight"].T + params["decoder.head.bias"], np.stack(weights)


MUTANTS = [(name, mutation) for name in ("gru-additive-scratch-l2", "lstm-dot-scratch-l2", "rnn-additive-scratch-l1")
           for mutation in ("no-mask", "current-state", "stale", "bottom-layer", "cell-state")
           if not (mutation == "bottom-layer" and name.endswith("l1")) and not (mutation == "cell-state"
                                                                                 and not name.startswith("lstm"))]


@pytest.mark.parametrize("name, mutation", MUTANTS)
def test_each_mutant_is_caught_far_outside_the_backends_tolerances(name: str, mutation: str) -> None:
    spec = CASES[name]
    data = case_data(spec)
    logits, _, weights = run(spec, data)
    same_logits, same_weights = mutant_decode(spec, data["params"], data, None)
    np.testing.assert_allclose(same_logits, logits, atol=1e-6)  # the harness is the reference's decoder
    np.testing.assert_allclose(same_weights, weights, atol=1e-7)
    bad_logits, bad_weights = mutant_decode(spec, data["params"], data, mutation)
    assert np.abs(bad_weights - weights).max() > 100 * WEIGHTS_ATOL
    assert np.abs(bad_logits - logits).max() > 5 * FORWARD_ATOL  # the logits alone would catch it too


# ---- decoding ----

def attention_model(seed: int, attention: Attention = Attention.ADDITIVE) -> tuple[Seq2SeqSpec, dict]:
    spec = Seq2SeqSpec(cell=Cell.GRU, impl=Impl.SCRATCH, source_vocab_size=9, target_vocab_size=7, embed_size=4,
                       hidden_size=5, num_layers=2, attention=attention)
    return spec, {k: 3 * v for k, v in init_params(spec, "uniform", seed).items()}  # confident, varied


def teacher_forced_weights(spec, params, source, valid, tokens) -> np.ndarray:
    """The weights of feeding <bos> + tokens to the decoder: one row per token predicted."""
    inputs = np.array([BOS] + list(tokens))[:, None]
    return reference.forward_weights(spec, params, source, valid, inputs)[2][:, 0]


@pytest.mark.parametrize("attention, seed", [(Attention.ADDITIVE, 0), (Attention.DOT, 3)])  # varied lengths
def test_greedy_and_beam_return_the_weights_each_token_was_predicted_with(attention: Attention, seed: int) -> None:
    spec, params = attention_model(seed, attention)
    model = reference.ReferenceTranslator(spec, params)
    source = np.random.default_rng(3).integers(0, 9, (5, 6))
    valid = np.array([5, 3, 2, 5, 4, 1])
    seen_lengths = set()
    for n, found in enumerate(greedy(model, source, valid, BOS, EOS, max_len=7)):
        single = (source[:, [n]], valid[[n]])
        best = beam_search(model, *single, BOS, EOS, max_len=7, beam_size=3)
        for hypothesis in (found, best, beam_search(model, *single, BOS, EOS, max_len=7, beam_size=1)):
            assert hypothesis.attention.shape == (hypothesis.length, 5)
            assert (hypothesis.attention[:, valid[n]:] == 0).all()
            np.testing.assert_allclose(hypothesis.attention.sum(axis=-1), 1, atol=1e-6)
            tokens = hypothesis.tokens + ((EOS,) if hypothesis.finished else ())
            want = teacher_forced_weights(spec, params, *single, tokens[:-1])
            np.testing.assert_allclose(hypothesis.attention, want, atol=1e-6)
            seen_lengths.add(hypothesis.length)
        (alone,) = greedy(model, *single, BOS, EOS, max_len=7)
        np.testing.assert_array_equal(beam_search(model, *single, BOS, EOS, 7, beam_size=1).attention, alone.attention)
    assert len(seen_lengths) > 2  # sentences of several lengths, finished and cut


def test_a_step_model_with_wrong_weights_is_caught() -> None:
    class Broken:
        def start(self, source, valid):
            return None

        def step(self, tokens, state):
            return np.zeros((len(tokens), 4)), state, np.zeros((len(tokens), 2))

        def select(self, state, rows):
            return state

    with pytest.raises(SeqcoreError, match=r"attention weights of shape \(1, 2\), not \(1, 3\)"):
        greedy(Broken(), np.zeros((3, 1), int), np.array([3]), BOS, EOS, 3)


# ---- the figures ----

def test_heat_maps_are_drawn_and_the_pair_names_its_largest_difference(tmp_path) -> None:
    import matplotlib.image

    spec, params = attention_model(0)
    model = reference.ReferenceTranslator(spec, params)
    source = np.array([[4], [5], [6], [2], [1]])
    (found,) = greedy(model, source, np.array([4]), BOS, EOS, max_len=6)
    source_tokens = ["i", "am", "home", "."]
    target_tokens = [f"t{i}" for i in range(found.length)]
    weights = found.attention[:, :4]
    single = plot_attention(tmp_path / "one.png", weights, source_tokens, target_tokens, title="i am home .")
    other = weights + np.where(np.arange(4) == 1, 0.03, 0.0)
    assert attention_difference(weights, other) == pytest.approx(0.03)
    pair = plot_attention_pair(tmp_path / "pair.png", {"mxnet": weights, "torch": other}, source_tokens,
                               target_tokens, title="i am home .")
    for path in (single, pair):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.image.imread(pair).shape[1] > matplotlib.image.imread(single).shape[1]  # two panels
    with pytest.raises(SeqcoreError, match=r"have shape \(.*\), not \(.*, 3\) \(target tokens, source tokens\)"):
        plot_attention(tmp_path / "bad.png", weights, source_tokens[:3], target_tokens)
    with pytest.raises(SeqcoreError, match="takes two maps, got 1"):
        plot_attention_pair(tmp_path / "bad.png", {"mxnet": weights}, source_tokens, target_tokens)
    assert not (tmp_path / "bad.png").exists()
