"""The modern forms in the NumPy reference, against independent re-derivations (NumPy only).

Bidirectional stacks are rebuilt from unidirectional one-layer runs (the reverse direction is the
forward recurrence on the time-flipped sequence, with the reverse weights); the GRU's reset-before
form is checked by hand; dropout masks against their definition and their place in the model.
The spec fields and canonical parameter names of these forms are pinned here too.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from seqcore.errors import SeqcoreError
from seqcore.model import reference
from seqcore.model.dropout import check_masks, draw_masks, mask_shapes
from seqcore.model.params import init_params, param_shapes
from seqcore.model.spec import Cell, GRUReset, InputKind, ModelSpec, Readout

T, N, H, I = 5, 2, 3, 4
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def bi_spec(cell: Cell, num_layers: int = 2, readout: Readout = Readout.SEQUENCE, **extra) -> ModelSpec:
    return ModelSpec(cell=cell, impl="scratch", input_size=I, hidden_size=H, output_size=2,
                     num_layers=num_layers, input_kind=InputKind.DENSE, readout=readout,
                     bidirectional=True, **extra)


def one_direction(spec: ModelSpec, params: dict, layer: int, suffix: str, inputs: np.ndarray,
                  state: tuple) -> tuple[np.ndarray, tuple]:
    """A unidirectional one-layer model whose identity head exposes the hidden outputs (T, N, H)."""
    single = ModelSpec(cell=spec.cell, impl="scratch", input_size=inputs.shape[-1], hidden_size=H,
                       output_size=H, input_kind=InputKind.DENSE, gru_reset=spec.gru_reset)
    weights = {f"rnn.l0.{name}": params[f"rnn.l{layer}.{name}{suffix}"] for name in WEIGHTS}
    weights.update({"head.weight": np.eye(H), "head.bias": np.zeros(H)})
    return reference.forward(single, weights, inputs, tuple(part[None] for part in state))


@pytest.mark.parametrize("cell", list(Cell))
@pytest.mark.parametrize("readout", list(Readout))
def test_bidirectional_is_two_unidirectional_runs(cell: Cell, readout: Readout) -> None:
    """Layer by layer: forward half = the forward weights on x; reverse half = the reverse weights
    on x[::-1], flipped back; layer 1 reads both halves; the state is indexed layer*2 + direction."""
    spec = bi_spec(cell, readout=readout)
    params = {k: v.astype(np.float64) for k, v in init_params(spec, "uniform", 4).items()}
    rng = np.random.default_rng(1)
    x = rng.standard_normal((T, N, I))
    state = tuple(rng.standard_normal((4, N, H)) for _ in range(spec.num_states))
    got, got_state = reference.forward(spec, params, x, state)

    layer_input, finals = x, []
    for layer in range(2):
        fwd, fwd_state = one_direction(spec, params, layer, "", layer_input,
                                       tuple(part[2 * layer] for part in state))
        rev, rev_state = one_direction(spec, params, layer, "_reverse", layer_input[::-1],
                                       tuple(part[2 * layer + 1] for part in state))
        finals += [fwd_state, rev_state]
        layer_input = np.concatenate([fwd, rev[::-1]], axis=-1)  # (T, N, 2H)
    if readout is Readout.LAST:  # both directions' final states: forward at T-1, reverse at t = 0
        features = np.concatenate([finals[2][0][0], finals[3][0][0]], axis=-1)
        np.testing.assert_allclose(features, np.concatenate([layer_input[-1, :, :H], layer_input[0, :, H:]], -1))
    else:
        features = layer_input
    np.testing.assert_allclose(got, features @ params["head.weight"].T + params["head.bias"], atol=1e-12)
    for part, got_part in enumerate(got_state):
        np.testing.assert_allclose(got_part, np.stack([f[part][0] for f in finals]), atol=1e-12)


def test_reverse_direction_reads_the_future() -> None:
    """At t = 0 the reverse half has read every input; changing the last input moves it there,
    while the forward half at t = 0 does not move."""
    spec = bi_spec(Cell.GRU, num_layers=1)
    params = init_params(spec, "uniform", 0)
    spec = dataclasses.replace(spec, output_size=2 * H)
    params["head.weight"], params["head.bias"] = np.eye(2 * H, dtype=np.float32), np.zeros(2 * H, np.float32)
    x = np.random.default_rng(2).standard_normal((T, N, I))
    changed = x.copy()
    changed[-1] += 1.0
    a, _ = reference.forward(spec, params, x)
    b, _ = reference.forward(spec, params, changed)
    np.testing.assert_array_equal(a[0, :, :H], b[0, :, :H])
    assert np.abs(a[0, :, H:] - b[0, :, H:]).min() > 1e-4


def test_gru_reset_before_by_hand() -> None:
    """r = 0 and z = 0: AFTER gives tanh(b_in) (b_hn sits inside r * (...)), BEFORE gives
    tanh(b_in + b_hn) (r zeroes h before W_hn, the bias stays); with r = 1 the two agree."""
    x, h = np.zeros((1, 1)), np.array([[0.7]])
    w_ih, w_hh = np.zeros((3, 1)), np.array([[0.0], [0.0], [2.0]])
    b_ih, b_hh = np.array([-30.0, -30.0, 0.25]), np.array([0.0, 0.0, 0.5])
    after = reference.gru_step(x, h, w_ih, w_hh, b_ih, b_hh, GRUReset.AFTER)
    before = reference.gru_step(x, h, w_ih, w_hh, b_ih, b_hh, GRUReset.BEFORE)
    assert after[0, 0] == pytest.approx(np.tanh(0.25), abs=1e-9)
    assert before[0, 0] == pytest.approx(np.tanh(0.75), abs=1e-9)
    b_ih[0] = 30.0  # r = 1: W_hn (1 * h) + b_hn = 1 * (W_hn h + b_hn) = 1.9
    for reset in GRUReset:
        assert reference.gru_step(x, h, w_ih, w_hh, b_ih, b_hh, reset)[0, 0] == pytest.approx(np.tanh(2.15))


def test_gru_reset_before_differs_in_a_model() -> None:
    before = ModelSpec(cell="gru", impl="scratch", input_size=5, hidden_size=H, output_size=5,
                       gru_reset="before")
    after = dataclasses.replace(before, gru_reset=GRUReset.AFTER)
    params = init_params(before, "uniform", 0)
    ids = np.random.default_rng(0).integers(0, 5, (T, N))
    assert np.abs(reference.forward(before, params, ids)[0] - reference.forward(after, params, ids)[0]).max() > 1e-3


# --- dropout ---------------------------------------------------------------------------------

def test_mask_shapes_and_values() -> None:
    spec = bi_spec(Cell.LSTM, num_layers=3, dropout=0.25)
    assert mask_shapes(spec, T, N) == [(T, N, 2 * H)] * 3
    last = dataclasses.replace(spec, readout=Readout.LAST, bidirectional=False)
    assert mask_shapes(last, T, N) == [(T, N, H), (T, N, H), (N, H)]
    assert mask_shapes(dataclasses.replace(spec, dropout=0.0), T, N) == []
    assert draw_masks(dataclasses.replace(spec, dropout=0.0), np.random.default_rng(0), T, N) is None

    big = draw_masks(dataclasses.replace(last, num_layers=1), np.random.default_rng(0), 400, 50)
    assert len(big) == 1 and big[0].shape == (50, H) and big[0].dtype == np.float32
    masks = draw_masks(spec, np.random.default_rng(0), 400, 50)
    values = np.concatenate([m.ravel() for m in masks])
    assert set(np.unique(values)) == {0.0, np.float32(1 / 0.75)}
    assert np.mean(values == 0) == pytest.approx(0.25, abs=0.01)
    assert np.mean(values) == pytest.approx(1.0, abs=0.02)  # inverted dropout keeps the mean
    again = draw_masks(spec, np.random.default_rng(0), 400, 50)
    assert all(np.array_equal(a, b) for a, b in zip(masks, again))


def test_check_masks_refuses_misfits() -> None:
    spec = bi_spec(Cell.RNN, dropout=0.5)
    masks = draw_masks(spec, np.random.default_rng(0), T, N)
    assert [m.shape for m in check_masks(spec, masks, T, N)] == mask_shapes(spec, T, N)
    assert check_masks(spec, None, T, N) is None and check_masks(spec, [], T, N) is None
    with pytest.raises(SeqcoreError, match="do not fit"):
        check_masks(spec, masks[:1], T, N)
    with pytest.raises(SeqcoreError, match="do not fit"):
        check_masks(spec, masks, T + 1, N)
    with pytest.raises(SeqcoreError, match="dropout is 0"):
        check_masks(dataclasses.replace(spec, dropout=0.0), masks, T, N)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_masks_act_where_they_should(bidirectional: bool) -> None:
    """All-ones masks change nothing; a zero head mask leaves the head bias alone; a zero mask on
    layer 1's inputs cuts the input from the outputs but not from layer 0's state."""
    spec = dataclasses.replace(bi_spec(Cell.LSTM, dropout=0.5), bidirectional=bidirectional)
    params = init_params(spec, "uniform", 3)
    rng = np.random.default_rng(0)
    x, other = rng.standard_normal((2, T, N, I))
    plain, plain_state = reference.forward(spec, params, x)
    ones = [np.ones(s, np.float32) for s in mask_shapes(spec, T, N)]
    masked, masked_state = reference.forward(spec, params, x, masks=ones)
    np.testing.assert_array_equal(masked, plain)

    no_head = ones[:-1] + [np.zeros_like(ones[-1])]
    np.testing.assert_allclose(reference.forward(spec, params, x, masks=no_head)[0],
                               np.broadcast_to(params["head.bias"], plain.shape))

    cut = [np.zeros_like(ones[0]), ones[1]]
    a, a_state = reference.forward(spec, params, x, masks=cut)
    b, b_state = reference.forward(spec, params, other, masks=cut)
    np.testing.assert_allclose(a, b)  # layer 1 reads zeros either way
    layer0 = slice(0, spec.num_directions)
    assert np.abs(a_state[0][layer0] - b_state[0][layer0]).min() > 1e-6  # layer 0 still reads x

    half = draw_masks(spec, np.random.default_rng(1), T, N)
    assert np.abs(reference.forward(spec, params, x, masks=half)[0] - plain).max() > 1e-3


# --- spec and parameters ---------------------------------------------------------------------

def test_spec_defaults_round_trip_and_old_dicts() -> None:
    spec = bi_spec(Cell.GRU, gru_reset="before", dropout=0.3)
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["gru_reset"] == "before" and spec.to_dict()["bidirectional"] is True
    assert spec.num_directions == 2 and spec.output_width == 2 * H
    old = {k: v for k, v in spec.to_dict().items() if k not in ("bidirectional", "gru_reset", "dropout")}
    plain = ModelSpec.from_dict(old)  # a checkpoint written before these fields existed
    assert (plain.bidirectional, plain.gru_reset, plain.dropout) == (False, GRUReset.AFTER, 0.0)
    assert plain.num_directions == 1 and plain.output_width == H
    assert ModelSpec.from_dict({**old, "dropout": 0}).dropout == 0.0


@pytest.mark.parametrize("change, message", [
    ({"gru_reset": "before", "impl": "concise"}, "use --impl scratch for --gru-reset before"),
    ({"gru_reset": "before", "cell": "lstm"}, "only applies to the GRU cell"),
    ({"gru_reset": "sideways"}, "Unknown gru reset 'sideways'"),
    ({"dropout": 1.0}, "dropout must be a number in [0, 1)"),
    ({"dropout": -0.1}, "dropout must be a number in [0, 1)"),
    ({"dropout": True}, "dropout must be a number in [0, 1)"),
    ({"bidirectional": "yes"}, "bidirectional must be true or false"),
])
def test_spec_refuses_in_one_sentence(change: dict, message: str) -> None:
    fields = {**bi_spec(Cell.GRU).to_dict(), **change}
    with pytest.raises(SeqcoreError) as error:
        ModelSpec.from_dict(fields)
    assert message in str(error.value) and str(error.value).count(". ") == 0


def test_bidirectional_parameter_names_and_order() -> None:
    spec = dataclasses.replace(bi_spec(Cell.LSTM), input_kind=InputKind.EMBEDDING, embed_size=2)
    shapes = param_shapes(spec)
    layer = lambda k, width, suffix: [(f"rnn.l{k}.weight_ih{suffix}", (4 * H, width)),
                                      (f"rnn.l{k}.weight_hh{suffix}", (4 * H, H)),
                                      (f"rnn.l{k}.bias_ih{suffix}", (4 * H,)),
                                      (f"rnn.l{k}.bias_hh{suffix}", (4 * H,))]
    assert list(shapes.items()) == [("embedding.weight", (I, 2)), *layer(0, 2, ""), *layer(0, 2, "_reverse"),
                                    *layer(1, 2 * H, ""), *layer(1, 2 * H, "_reverse"),
                                    ("head.weight", (2, 2 * H)), ("head.bias", (2,))]
    for scheme in ("uniform", "normal", "xavier"):
        params = init_params(spec, scheme, 0)
        assert {k: v.shape for k, v in params.items()} == shapes
        if scheme != "uniform":  # biases of both directions are zero, weights are drawn
            assert not params["rnn.l1.bias_hh_reverse"].any() and params["rnn.l1.weight_ih_reverse"].any()
    # The forward parameters of a unidirectional model are drawn first and identically.
    uni = init_params(dataclasses.replace(spec, bidirectional=False), "uniform", 0)
    bi = init_params(spec, "uniform", 0)
    for name in ("embedding.weight", "rnn.l0.weight_ih", "rnn.l0.bias_hh"):
        np.testing.assert_array_equal(uni[name], bi[name])
