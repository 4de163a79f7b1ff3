"""The fake backend (tests/fakes.py) is what the fast tier's run-layer and loop tests stand on, so
its numbers are checked here: the forward pass against the NumPy oracle, the gradients against
finite differences, the optimizers against their update rules, a carried state against one long
sequence."""
from __future__ import annotations

import numpy as np
import pytest

from seqcore.backend import Device, Optimizer
from seqcore.errors import SeqcoreError
from seqcore.model import reference
from seqcore.model.dropout import draw_masks
from seqcore.model.params import init_params
from seqcore.model.spec import InputKind, Loss, ModelSpec, Readout
from tests import fakes
from tests.fakes import NumpyBackend

# (spec fields, loss): ids or dense inputs, every step or the last, both losses, relu, dropout
MODELS = [
    (dict(input_kind="onehot", readout="sequence"), Loss.CROSS_ENTROPY),
    (dict(input_kind="onehot", readout="last", activation="relu"), Loss.CROSS_ENTROPY),
    (dict(input_kind="dense", readout="sequence"), Loss.MSE),
    (dict(input_kind="dense", readout="last", dropout=0.5), Loss.MSE),
    (dict(input_kind="onehot", readout="sequence", dropout=0.3), Loss.CROSS_ENTROPY),
]
T, N = 4, 3


def spec_of(fields: dict) -> ModelSpec:
    return ModelSpec(cell="rnn", impl="scratch", input_size=5, hidden_size=4, output_size=5, **fields)


def batch_of(spec: ModelSpec, loss: Loss, seed: int = 0):
    rng = np.random.default_rng(seed)
    if spec.input_kind is InputKind.DENSE:
        inputs = rng.standard_normal((T, N, spec.input_size)).astype(np.float32)
    else:
        inputs = rng.integers(0, spec.input_size, (T, N))
    shape = (N,) if spec.readout is Readout.LAST else (T, N)
    if loss is Loss.MSE:
        targets = rng.standard_normal((*shape, spec.output_size)).astype(np.float32)
    else:
        targets = rng.integers(0, spec.output_size, shape)
    masks = draw_masks(spec, rng, T, N)
    return inputs, targets, masks


def ids(models):
    return [f"{fields.get('input_kind')}-{fields.get('readout')}-{loss.value}{'-dropout' if 'dropout' in fields else ''}"
            f"{'-relu' if 'activation' in fields else ''}" for fields, loss in models]


@pytest.mark.parametrize("fields, loss", MODELS, ids=ids(MODELS))
def test_forward_and_loss_are_the_oracles(fields: dict, loss: Loss) -> None:
    spec = spec_of(fields)
    params = init_params(spec, seed=1)
    inputs, targets, masks = batch_of(spec, loss)
    fake = NumpyBackend()
    model = fake.build_model(spec, params, "cpu")
    state = (np.random.default_rng(2).standard_normal((1, N, 4)).astype(np.float32),)
    expected, expected_state = reference.forward(spec, params, inputs, state)
    outputs, new_state = fake.forward(model, inputs, state)
    np.testing.assert_allclose(outputs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state[0], expected_state[0], rtol=1e-5, atol=1e-6)
    value, _ = fake.evaluate(model, inputs, targets, state, loss)
    assert value == pytest.approx(reference.loss(loss, expected, targets), rel=1e-5)
    with_masks = fake.to_device(model, inputs, targets, masks, loss)
    masked, _ = reference.forward(spec, params, inputs, state, masks)
    trained, _ = fake.backward(model, with_masks, fake.state_from_numpy(model, state[0][None]), loss)
    assert trained == pytest.approx(reference.loss(loss, masked, targets), rel=1e-5)


@pytest.mark.parametrize("fields, loss", MODELS, ids=ids(MODELS))
def test_gradients_are_finite_differences(fields: dict, loss: Loss) -> None:
    spec = spec_of(fields)
    fake = NumpyBackend()
    model = fake.build_model(spec, init_params(spec, seed=3), "cpu")
    inputs, targets, masks = batch_of(spec, loss, seed=4)
    batch = fake.to_device(model, inputs, targets, masks, loss)
    h0 = np.random.default_rng(5).standard_normal((N, 4))
    _, grads, _ = fakes.backward(spec, model.params, batch, h0, loss)
    eps = 1e-6
    for name, value in model.params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            shifted = {k: v.copy() for k, v in model.params.items()}
            shifted[name][index] += eps
            up = fakes.loss_and_grad(loss, fakes.forward(spec, shifted, batch.x, h0, batch.masks)[0], batch.y)[0]
            shifted[name][index] -= 2 * eps
            down = fakes.loss_and_grad(loss, fakes.forward(spec, shifted, batch.x, h0, batch.masks)[0], batch.y)[0]
            numeric[index] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-8, err_msg=name)


def test_a_carried_state_continues_the_sequence() -> None:
    """Two batches with the state carried give the final state of the one long sequence."""
    spec = spec_of(dict(input_kind="onehot"))
    params = init_params(spec, seed=6)
    fake = NumpyBackend()
    model = fake.build_model(spec, params, "cpu")
    long = np.random.default_rng(7).integers(0, 5, (2 * T, N))
    _, state = fake.forward(model, long[:T], None)
    _, state = fake.forward(model, long[T:], fake.detach_state(state))
    _, expected = reference.forward(spec, params, long)
    np.testing.assert_allclose(fake.state_to_numpy(state)[0], expected[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("optimizer", [Optimizer.SGD, Optimizer.ADAM])
def test_the_optimizers_follow_their_update_rules(optimizer: Optimizer) -> None:
    spec = spec_of(dict(input_kind="onehot"))
    fake = NumpyBackend()
    model = fake.build_model(spec, init_params(spec, seed=8), "cpu")
    trainer = fake.make_trainer(model, optimizer, 0.1)
    start = {k: v.copy() for k, v in model.params.items()}
    inputs, targets, _ = batch_of(spec, Loss.CROSS_ENTROPY)
    grads = []
    for _ in range(2):
        fake.forward_backward(model, inputs, targets, None, Loss.CROSS_ENTROPY)
        grads.append(model.grads)
        fake.step(trainer)
    for name, value in start.items():
        g1, g2 = grads[0][name], grads[1][name]
        if optimizer is Optimizer.SGD:
            expected = value - 0.1 * g1 - 0.1 * g2
        else:
            m1, v1 = 0.1 * g1, 0.001 * g1 ** 2
            after_one = value - 0.1 * (m1 / 0.1) / (np.sqrt(v1 / 0.001) + 1e-8)
            m2, v2 = 0.9 * m1 + 0.1 * g2, 0.999 * v1 + 0.001 * g2 ** 2
            expected = after_one - 0.1 * (m2 / (1 - 0.9 ** 2)) / (np.sqrt(v2 / (1 - 0.999 ** 2)) + 1e-8)
        # the parameters (and moments) are stored as float32 after each update
        np.testing.assert_allclose(model.params[name], expected, rtol=1e-6, atol=1e-7, err_msg=name)
        assert np.array_equal(model.params[name], model.params[name].astype(np.float32))
    saved = fake.export_trainer_state(model, trainer)
    if optimizer is Optimizer.SGD:
        assert saved == {}
        return
    assert saved["adam.step"].tolist() == [2] and saved["adam.m/head.bias"].dtype == np.float32
    again = fake.build_model(spec, fake.export_params(model), "cpu")
    resumed = fake.make_trainer(again, optimizer, 0.1)
    fake.load_trainer_state(again, resumed, saved)
    assert again.updates == 2
    np.testing.assert_allclose(resumed.m["head.weight"], trainer.m["head.weight"], rtol=1e-6)


def test_a_span_is_its_steps_one_by_one() -> None:
    spec = spec_of(dict(input_kind="onehot"))
    params = init_params(spec, seed=9)
    work = [batch_of(spec, Loss.CROSS_ENTROPY, seed=s) for s in range(4)]
    results = []
    for span in ([work], [[b] for b in work]):
        fake = NumpyBackend()
        model = fake.build_model(spec, params, "cpu")
        trainer = fake.make_trainer(model, Optimizer.SGD, 0.5)
        state, losses, norms = None, [], []
        for run in span:
            value, norm, state = fake.train_span(model, trainer, run, state, loss=Loss.CROSS_ENTROPY, clip=0.5,
                                                 lrs=None, carry_state=True)
            losses += value.tolist()
            norms += norm.tolist()
        results.append((losses, norms, fake.export_params(model)))
    assert results[0][:2] == results[1][:2]
    assert all(np.array_equal(results[0][2][k], results[1][2][k]) for k in params)
    assert max(results[0][1]) > 0.5  # clipping happened, and did the same in both


def test_what_the_fake_cannot_build_or_reach_is_one_sentence() -> None:
    fake = NumpyBackend()
    gru = ModelSpec(cell="gru", impl="scratch", input_size=3, hidden_size=2, output_size=3)
    with pytest.raises(SeqcoreError, match="builds one unidirectional RNN layer, not this gru model"):
        fake.build_model(gru, init_params(gru), "cpu")
    with pytest.raises(SeqcoreError, match="no GPU"):
        fake.resolve_device(Device.GPU)
    assert fake.resolve_device(Device.AUTO) == "cpu"
