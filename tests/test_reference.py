"""The NumPy reference itself, against hand-computed values and the cells' defining properties."""
from __future__ import annotations

import numpy as np
import pytest

from seqcore.model import reference
from seqcore.model.params import init_params, param_shapes
from seqcore.model.spec import Cell, InputKind, Loss, ModelSpec, Readout


def test_rnn_step_by_hand() -> None:
    w_ih, w_hh = np.array([[0.5, -1.0]]), np.array([[2.0]])
    x, h = np.array([[1.0, 2.0]]), np.array([[0.25]])
    z = 0.5 - 2.0 + 0.5 + 0.1 + 0.2  # W_ih x + W_hh h + b_ih + b_hh
    assert reference.rnn_step(x, h, w_ih, w_hh, np.array([0.1]), np.array([0.2]))[0, 0] == pytest.approx(np.tanh(z))
    assert reference.rnn_step(x, h, w_ih, w_hh, np.array([0.1]), np.array([0.2]), "relu")[0, 0] == 0.0


def test_lstm_gate_order_is_i_f_g_o() -> None:
    """Drive one gate block at a time with a large bias and watch which role it plays."""
    h = c = np.zeros((1, 1))
    x = np.zeros((1, 1))
    w = np.zeros((4, 1))

    def run(bias):
        return reference.lstm_step(x, h, c + 0.5, w, np.zeros((4, 1)), np.array(bias, float), np.zeros(4))

    # c = 0.5. o open (bias +20), f closed (-20), i open, g = tanh(20) ~ 1: c' = 1, h' = tanh(1).
    h1, c1 = run([20, -20, 20, 20])
    assert c1[0, 0] == pytest.approx(1.0) and h1[0, 0] == pytest.approx(np.tanh(1.0))
    # f open, i closed: c' = c = 0.5 kept; o closed: h' = 0.
    h2, c2 = run([-20, 20, 20, -20])
    assert c2[0, 0] == pytest.approx(0.5) and h2[0, 0] == pytest.approx(0.0, abs=1e-8)


def test_gru_reset_gate_multiplies_hidden_bias() -> None:
    """n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): with r = 0 the bias b_hn must vanish."""
    x, h = np.zeros((1, 1)), np.zeros((1, 1))
    w = np.zeros((3, 1))
    b_ih = np.array([-30.0, -30.0, 0.0])  # r = 0, z = 0
    out = reference.gru_step(x, h, w, w, b_ih, np.array([0.0, 0.0, 5.0]))
    assert out[0, 0] == pytest.approx(0.0, abs=1e-9)
    b_ih[0] = 30.0  # r = 1: now b_hn counts
    assert reference.gru_step(x, h, w, w, b_ih, np.array([0.0, 0.0, 5.0]))[0, 0] == pytest.approx(np.tanh(5.0))


@pytest.mark.parametrize("cell", list(Cell))
def test_forward_shapes_and_state_carry(cell: Cell) -> None:
    spec = ModelSpec(cell=cell, impl="scratch", input_size=6, hidden_size=4, output_size=6, num_layers=2)
    params = init_params(spec, "uniform", 1)
    ids = np.random.default_rng(0).integers(0, 6, (7, 3))
    out, state = reference.forward(spec, params, ids)
    assert out.shape == (7, 3, 6) and len(state) == spec.num_states and state[0].shape == (2, 3, 4)
    first, mid = reference.forward(spec, params, ids[:3])
    second, end = reference.forward(spec, params, ids[3:], mid)
    np.testing.assert_allclose(np.concatenate([first, second]), out, atol=1e-6)
    for a, b in zip(end, state):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_last_readout_and_losses() -> None:
    spec = ModelSpec(cell="gru", impl="scratch", input_size=5, hidden_size=3, output_size=4,
                     input_kind=InputKind.EMBEDDING, embed_size=2, readout=Readout.LAST)
    params = init_params(spec, "normal", 2)
    ids = np.array([[1, 2], [3, 4], [0, 1]])
    full, _ = reference.forward(spec.__class__(**{**spec.__dict__, "readout": Readout.SEQUENCE}), params, ids)
    last, _ = reference.forward(spec, params, ids)
    np.testing.assert_allclose(last, full[-1])
    uniform = np.zeros((2, 4))
    assert reference.loss(Loss.CROSS_ENTROPY, uniform, np.array([0, 3])) == pytest.approx(np.log(4))
    assert reference.loss(Loss.MSE, np.ones((2, 2)), np.zeros((2, 2))) == pytest.approx(1.0)  # no 1/2


@pytest.mark.parametrize("scheme", ["uniform", "normal", "xavier"])
def test_init_schemes(scheme: str) -> None:
    spec = ModelSpec(cell="lstm", impl="concise", input_size=28, hidden_size=256, output_size=28)
    params = init_params(spec, scheme, 0)
    assert {k: v.shape for k, v in params.items()} == param_shapes(spec)
    assert all(v.dtype == np.float32 for v in params.values())
    weight = params["rnn.l0.weight_hh"]
    if scheme == "uniform":
        assert np.abs(weight).max() <= 1 / 16 and weight.std() == pytest.approx(1 / 16 / np.sqrt(3), rel=0.02)
    elif scheme == "normal":
        assert weight.std() == pytest.approx(0.01, rel=0.02) and not params["rnn.l0.bias_ih"].any()
    else:
        assert np.abs(weight).max() <= np.sqrt(6 / 512) and not params["head.bias"].any()
    again = init_params(spec, scheme, 0)
    assert all(np.array_equal(params[k], again[k]) for k in params)
    other = init_params(spec, scheme, 1)
    assert not np.array_equal(params["rnn.l0.weight_ih"], other["rnn.l0.weight_ih"])
