"""The encoder-decoder's spec, parameter layout, dropout masks and NumPy reference, on their own.

The reference is checked against the language-model reference it is built from (a one-layer
decoder is a DENSE ModelSpec on [embedding, context]), against itself (one decoder call over T
steps equals T calls of one step), and for what the masked losses may and may not read.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from seqcore.errors import SeqcoreError
from seqcore.model import reference as lm_reference
from seqcore.model import seq2seq_reference as reference
from seqcore.model.seq2seq import (FAMILY, Attention, Seq2SeqSpec, draw_masks, init_params, mask_shapes,
                                   param_shapes, seq2seq_loss, spec_from_dict, split_masks, stack_params)
from seqcore.model.spec import Cell, Impl, InputKind, Loss, ModelSpec
from tests.translation_cases import (BATCH, HIDDEN, SOURCE_STEPS, TARGET_STEPS, case_data, case_masks,
                                     cases, spec_for)


def test_spec_round_trips_through_json_with_its_family() -> None:
    spec = spec_for(Cell.LSTM, Impl.CONCISE, 2, 0.3)
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["family"] == FAMILY and data["attention"] == "none"
    assert Seq2SeqSpec.from_dict(data) == spec == spec_from_dict(data)
    lm = ModelSpec(cell="gru", impl="scratch", input_size=5, hidden_size=4, output_size=5)
    assert spec_from_dict(lm.to_dict()) == lm  # no family: a language model's spec
    with pytest.raises(SeqcoreError, match="Unknown model family 'transformer'"):
        spec_from_dict({**data, "family": "transformer"})


@pytest.mark.parametrize("change, fragment", [
    ({"cell": "elman"}, "Unknown cell 'elman'"),
    ({"embed_size": 0}, "embed size must be a positive integer"),
    ({"dropout": 1.0}, "dropout must be a number in [0, 1)"),
    ({"gru_reset": "before"}, "use --impl scratch"),
    ({"attention": "bahdanau"}, "Unknown attention 'bahdanau'"),
    ({"family": "lm"}, "family is 'seq2seq'"),
    ({"colour": 1}, "Unknown Seq2SeqSpec field(s): colour"),
])
def test_spec_refuses_bad_fields_in_one_sentence(change: dict, fragment: str) -> None:
    data = {**spec_for(Cell.GRU, Impl.CONCISE, 2).to_dict(), **change}
    with pytest.raises(SeqcoreError) as error:
        Seq2SeqSpec.from_dict(data)
    assert fragment in str(error.value)


def test_parameter_layout() -> None:
    spec = Seq2SeqSpec(cell="lstm", impl="scratch", source_vocab_size=11, target_vocab_size=13, embed_size=5,
                       hidden_size=7, num_layers=2)
    shapes = param_shapes(spec)
    assert shapes["encoder.embedding.weight"] == (11, 5) and shapes["decoder.embedding.weight"] == (13, 5)
    assert shapes["encoder.rnn.l0.weight_ih"] == (28, 5)
    assert shapes["decoder.rnn.l0.weight_ih"] == (28, 5 + 7)  # embedding, then the context
    assert shapes["encoder.rnn.l1.weight_ih"] == shapes["decoder.rnn.l1.weight_ih"] == (28, 7)
    assert shapes["decoder.head.weight"] == (13, 7) and shapes["decoder.head.bias"] == (13,)
    assert len(shapes) == 2 + 2 * 2 * 4 + 2
    params = init_params(spec, "xavier", seed=1)
    assert {k: v.shape for k, v in params.items()} == shapes and all(v.dtype == np.float32 for v in params.values())
    assert not params["decoder.rnn.l0.bias_hh"].any()  # xavier: zero biases
    assert set(stack_params(params, "decoder")) == {f"l{k}.{w}" for k in range(2)
                                                    for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    np.testing.assert_array_equal(init_params(spec, "uniform", 4)["encoder.rnn.l1.weight_hh"],
                                  init_params(spec, "uniform", 4)["encoder.rnn.l1.weight_hh"])


def test_masks_act_between_layers_of_each_stack_only() -> None:
    spec = spec_for(Cell.GRU, Impl.SCRATCH, 3, 0.5)
    assert mask_shapes(spec, 4, 6, 2) == [(4, 2, HIDDEN)] * 2 + [(6, 2, HIDDEN)] * 2
    assert mask_shapes(spec_for(Cell.GRU, Impl.SCRATCH, 1, 0.5), 4, 6, 2) == []
    assert draw_masks(spec_for(Cell.GRU, Impl.SCRATCH, 2), np.random.default_rng(0), 4, 6, 2) is None
    masks = draw_masks(spec, np.random.default_rng(0), 4, 6, 2)
    assert set(np.unique(np.concatenate([m.ravel() for m in masks]))) <= {0.0, 2.0}
    encoder, decoder, weights = split_masks(spec, masks, 4, 6, 2)
    assert [m.shape for m in encoder] == [(4, 2, HIDDEN)] * 2 and [m.shape for m in decoder] == [(6, 2, HIDDEN)] * 2
    assert weights is None
    with pytest.raises(SeqcoreError, match="do not fit this encoder-decoder"):
        split_masks(spec, masks, 4, 5, 2)


def test_one_layer_decoder_is_a_dense_language_model_on_embedding_and_context() -> None:
    """The decoder equals seqcore.model.reference's DENSE model fed [embedding, context] per step,
    started from the encoder's final state (which is also where the context comes from)."""
    spec = spec_for(Cell.LSTM, Impl.SCRATCH, 1)
    data = case_data(spec)
    params = data["params"]
    logits, _ = reference.forward(spec, params, data["source"], data["source_valid"], data["decoder_inputs"])
    outputs, state = reference.encode(spec, params, data["source"])
    np.testing.assert_allclose(outputs[-1], state[0][-1], atol=1e-7)  # the context is the final top h
    lm = ModelSpec(cell="lstm", impl="scratch", input_kind=InputKind.DENSE, input_size=spec.embed_size + HIDDEN,
                   hidden_size=HIDDEN, output_size=spec.target_vocab_size)
    lm_params = {f"rnn.{k}": v for k, v in stack_params(params, "decoder").items()}
    lm_params.update({"head.weight": params["decoder.head.weight"], "head.bias": params["decoder.head.bias"]})
    embedded = params["decoder.embedding.weight"][data["decoder_inputs"]]
    features = np.concatenate([embedded, np.broadcast_to(outputs[-1], embedded.shape[:2] + (HIDDEN,))], axis=-1)
    want, _ = lm_reference.forward(lm, lm_params, features, state)
    np.testing.assert_allclose(logits, want, atol=1e-6)


@pytest.mark.parametrize("name", ["gru-scratch-l2", "lstm-scratch-l2", "rnn-scratch-l1",
                                  "gru-additive-scratch-l2", "lstm-dot-scratch-l2"])
def test_step_by_step_decoding_equals_teacher_forcing(name: str) -> None:
    spec = dict(cases())[name]
    data = case_data(spec)
    logits, final, weights = reference.forward_weights(spec, data["params"], data["source"], data["source_valid"],
                                                       data["decoder_inputs"])
    translator = reference.ReferenceTranslator(spec, data["params"])
    state = translator.start(data["source"], data["source_valid"])
    for t in range(TARGET_STEPS):
        step_logits, state, step_weights = translator.step(data["decoder_inputs"][t], state)
        np.testing.assert_allclose(step_logits, logits[t], atol=1e-6)
        if spec.attends:
            np.testing.assert_allclose(step_weights, weights[t], atol=1e-7)
        else:
            assert step_weights is None and weights is None
    for part, want in zip(state[2:], final):
        np.testing.assert_allclose(part, want, atol=1e-6)
    rows = np.array([2, 0, 0])
    picked = translator.select(state, rows)
    np.testing.assert_array_equal(picked[0], state[0][:, rows])  # encoder outputs (T_src, B, H)
    np.testing.assert_array_equal(picked[1], state[1][rows])  # valid lengths (B,)
    np.testing.assert_array_equal(picked[2], state[2][:, rows])


def test_masked_losses_read_real_tokens_only() -> None:
    spec = spec_for(Cell.GRU, Impl.SCRATCH, 2)
    data = case_data(spec)
    logits, _ = reference.forward(spec, data["params"], data["source"], data["source_valid"], data["decoder_inputs"])
    targets, valid = data["targets"], data["target_valid"]
    padded = np.arange(TARGET_STEPS)[:, None] >= valid
    noisy = logits.copy()
    noisy[padded] = 50.0 * np.random.default_rng(0).standard_normal(noisy[padded].shape)
    for kind in (Loss.MASKED, Loss.MASKED_D2L):
        assert reference.masked_loss(kind, noisy, targets, valid) == reference.masked_loss(kind, logits, targets, valid)
    per_token = lm_reference.cross_entropies(logits, targets)
    assert reference.masked_loss(Loss.MASKED, logits, targets, valid) == pytest.approx(per_token[~padded].mean())
    assert reference.masked_loss(Loss.MASKED_D2L, logits, targets, valid) == pytest.approx(
        per_token[~padded].sum() / (TARGET_STEPS * BATCH))


def test_dropout_changes_the_training_pass_and_only_that() -> None:
    spec = spec_for(Cell.LSTM, Impl.SCRATCH, 2, 0.4)
    data = case_data(spec)
    args = (spec, data["params"], data["source"], data["source_valid"], data["decoder_inputs"])
    plain, _ = reference.forward(*args)
    dropped, _ = reference.forward(*args, case_masks(spec))
    ones = [np.ones(shape, np.float32) for shape in mask_shapes(spec, SOURCE_STEPS, TARGET_STEPS, BATCH)]
    assert np.abs(plain - dropped).max() > 1e-3
    np.testing.assert_array_equal(reference.forward(*args, ones)[0], plain)


def test_seq2seq_loss_refuses_language_model_losses() -> None:
    assert seq2seq_loss("d2l") is Loss.MASKED_D2L and seq2seq_loss("masked") is Loss.MASKED
    with pytest.raises(SeqcoreError, match="not a sequence-to-sequence loss: choose masked or d2l"):
        seq2seq_loss("cross_entropy")
    assert Attention("none") is Attention.NONE
