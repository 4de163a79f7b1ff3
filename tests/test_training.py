"""The training protocol against the NumPy fake backend (tests/fakes.py): what is called, in which
order, with which state, and the figures it reports, checked against the NumPy oracle: state
carried and detached for sequential batches, begun afresh for independent ones, clipping by
global norm, a NaN stopping training at the right step, spans that change nothing.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from seqcore.backend import Optimizer
from seqcore.errors import SeqcoreError
from seqcore.model import reference
from seqcore.model.params import init_params
from seqcore.model.spec import Loss, ModelSpec, Readout
from seqcore.train.loop import (
    EpochStats,
    NonFiniteLoss,
    clip_factor,
    evaluate,
    step_masks,
    train_epoch,
)
from tests import fakes
from tests.fakes import NumpyBackend

SPEC = ModelSpec(cell="rnn", impl="scratch", input_size=3, hidden_size=2, output_size=3)
DENSE = ModelSpec(cell="rnn", impl="scratch", input_size=3, hidden_size=2, output_size=3, input_kind="dense")
CE = Loss.CROSS_ENTROPY


def trained(spec: ModelSpec = SPEC, lr: float = 0.5):
    """(fake, model, trainer, the initial parameters) for `spec`, weights from seed 0."""
    fake = NumpyBackend()
    params = init_params(spec, seed=0)
    model = fake.build_model(spec, params, "cpu")
    return fake, model, fake.make_trainer(model, Optimizer.SGD, lr), params


def batches(count, steps=5, batch=2, seed=0):
    """`count` batches of token ids, (steps, batch) each, targets one token on."""
    rng = np.random.default_rng(seed)
    ids = [rng.integers(0, 3, (steps + 1, batch)) for _ in range(count)]
    return [(x[:-1], x[1:]) for x in ids]


def dense_batches(scales, steps=2, batch=2, seed=0):
    """MSE batches of (steps, batch, 3) features whose targets are `scale` x a fixed pattern."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((steps, batch, 3)).astype(np.float32),
             np.full((steps, batch, 3), scale, np.float32)) for scale in scales]


def states_in(fake: NumpyBackend, kind: str = "backward") -> list[np.ndarray]:
    return [call[1] for call in fake.calls if call[0] == kind]


def test_clip_factor() -> None:
    assert clip_factor(0.5, 1.0) == 1.0
    assert clip_factor(4.0, 1.0) == 0.25
    assert clip_factor(4.0, 0.0) == 1.0  # 0 turns clipping off


def test_sequential_state_is_carried_and_detached() -> None:
    fake, model, trainer, params = trained()
    data = batches(3)
    train_epoch(fake, model, trainer, data, loss=CE, clip=1.0, carry_state=True)
    received = states_in(fake)
    np.testing.assert_array_equal(received[0], np.zeros((1, 2, 2)))  # begun for the batch's 2 rows
    # Batch 2 starts from the state batch 1 ended in (computed before its update, with the weights it trained with).
    _, after_first = reference.forward(SPEC, params, data[0][0])
    np.testing.assert_allclose(received[1], after_first[0], rtol=1e-6)
    kinds = [kind for kind in fake.kinds() if kind in ("begin", "detach", "backward")]
    assert kinds == ["begin", "backward", "detach", "backward", "detach", "backward"]


def test_random_batches_begin_a_fresh_state_each_time() -> None:
    fake, model, trainer, _ = trained()
    train_epoch(fake, model, trainer, batches(2), loss=CE, clip=1.0, carry_state=False)
    assert all(not state.any() for state in states_in(fake))
    assert fake.kinds().count("begin") == 2 and "detach" not in fake.kinds()


def test_clipping_scales_only_large_gradients_before_the_step() -> None:
    fake, model, trainer, params = trained(DENSE)
    data = dense_batches([0.0, 100.0])  # the second batch's targets are far: a large gradient
    norms = []
    stats = train_epoch(fake, model, trainer, data, loss=Loss.MSE, clip=2.0, carry_state=False,
                        on_step=lambda step, value, stats: norms.append(stats.max_grad_norm))
    # The first step's norm is the gradient's, as the oracle's weights give it.
    batch = fake.to_device(fake.build_model(DENSE, params, "cpu"), *data[0], None, Loss.MSE)
    _, grads, _ = fakes.backward(DENSE, {k: v.astype(np.float64) for k, v in params.items()}, batch,
                                 np.zeros((2, 2)), Loss.MSE)
    assert norms[0] == pytest.approx(math.sqrt(sum(float((g ** 2).sum()) for g in grads.values())), rel=1e-12)
    assert norms[0] < 2.0 < norms[1] == stats.max_grad_norm
    kinds = [call for call in fake.calls if call[0] in ("scale", "step")]
    assert kinds == [("step", 0.5), ("scale", 2.0 / norms[1]), ("step", 0.5)]


def test_perplexity_weights_batches_by_target_count() -> None:
    fake, model, trainer, params = trained()
    data = [batches(1, steps=3)[0], batches(1, steps=1, seed=1)[0]]  # 6 and 2 targets
    stats = train_epoch(fake, model, trainer, data, loss=CE, clip=0.0, carry_state=False)
    first, second = (call[2] for call in fake.calls if call[0] == "backward")
    assert first == pytest.approx(reference.loss(CE, reference.forward(SPEC, params, data[0][0])[0], data[0][1]))
    expected = math.exp((6 * first + 2 * second) / 8)
    assert stats.num_targets == 8 and stats.perplexity == pytest.approx(expected, rel=1e-12)


def test_warmup_steps_are_left_out_of_throughput() -> None:
    fake, model, trainer, _ = trained()
    stats = train_epoch(fake, model, trainer, batches(3), loss=CE, clip=0.0, carry_state=False, warmup_steps=1)
    assert stats.timed_tokens == 2 * 10 and stats.steps == 3


@pytest.mark.parametrize("span", [1, 0])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_is_reported_at_its_step_after_its_span(bad: float, span: int) -> None:
    fake, model, trainer, _ = trained(DENSE)
    seen = []
    with pytest.raises(NonFiniteLoss) as info:
        train_epoch(fake, model, trainer, dense_batches([1.0, bad, 1.0]), loss=Loss.MSE, clip=1.0,
                    carry_state=True, epoch=4, span=span, on_step=lambda step, value, stats: seen.append(step),
                    on_span=lambda step, stats, carry: seen.append(("span", step)))
    assert (info.value.epoch, info.value.step) == (4, 2)
    assert "epoch 4, step 2" in str(info.value) and f"{bad}" in str(info.value).lower()
    assert seen == ([1, ("span", 1)] if span == 1 else [1])  # the good step's figures, nothing after
    # A span does not stop at the NaN (that would need a read-back per step): span 1 ends with the
    # bad step's update, a whole-epoch span runs every step; the caller saves neither model.
    assert fake.kinds().count("step") == (2 if span == 1 else 3)


def test_spans_cut_at_multiples_of_span_the_warmup_and_a_new_batch_size() -> None:
    fake, model, trainer, _ = trained()
    data = batches(5) + batches(2, batch=1)
    train_epoch(fake, model, trainer, data[1:], loss=CE, clip=1.0, carry_state=True,
                stats=EpochStats(steps=1, num_targets=10), span=3, warmup_steps=2)
    # steps 2 (the warm-up ends), 3 (a span's end), 4-5 (a smaller batch follows), 6, then 7 (a new span)
    assert [call[1] for call in fake.calls if call[0] == "span"] == [1, 1, 2, 1, 1]


def test_spans_give_the_same_figures_as_single_steps() -> None:
    results = []
    for span in (1, 2, 0):
        fake, model, trainer, _ = trained()
        steps = []
        stats = train_epoch(fake, model, trainer, batches(5), loss=CE, clip=0.5, carry_state=True, span=span,
                            on_step=lambda step, value, stats: steps.append((step, value)))
        results.append((steps, stats.loss_sum, stats.max_grad_norm, fake.export_params(model)))
        assert "scale" in fake.kinds()  # clipping acted
    for steps, loss_sum, norm, params in results[1:]:  # bit for bit
        assert (steps, loss_sum, norm) == results[0][:3]
        assert all(np.array_equal(params[k], results[0][3][k]) for k in params)


def test_empty_epoch_is_an_error() -> None:
    fake, model, trainer, _ = trained()
    with pytest.raises(SeqcoreError):
        train_epoch(fake, model, trainer, [], loss=CE, clip=1.0, carry_state=True)


def test_evaluate_carries_state_and_averages() -> None:
    fake, model, _, params = trained()
    data = batches(2)
    stats = evaluate(fake, model, data, loss=CE, carry_state=True)
    first, state = reference.forward(SPEC, params, data[0][0])
    second, _ = reference.forward(SPEC, params, data[1][0], state)
    expected = (reference.loss(CE, first, data[0][1]) + reference.loss(CE, second, data[1][1])) / 2
    assert stats.mean_loss == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(states_in(fake, "evaluate")[1], state[0], rtol=1e-6)


def dropout_spec(p: float, readout: Readout = Readout.SEQUENCE) -> ModelSpec:
    return ModelSpec(cell="gru", impl="concise", input_size=3, hidden_size=4, output_size=3, num_layers=3,
                     bidirectional=True, dropout=p, readout=readout)


def test_step_masks_depend_on_seed_epoch_and_step_alone() -> None:
    spec = dropout_spec(0.5)
    masks = step_masks(spec, 7, 2, 5, 6, 3)
    assert [m.shape for m in masks] == [(6, 3, 8)] * 3  # layers 1 and 2, then the head: (T, N, D*H)
    assert all(m.dtype == np.float32 and set(np.unique(m)) <= {0.0, 2.0} for m in masks)
    again = step_masks(spec, 7, 2, 5, 6, 3)  # a resumed run asks for step 5 afresh
    assert all(np.array_equal(a, b) for a, b in zip(masks, again))
    for other in (step_masks(spec, 8, 2, 5, 6, 3), step_masks(spec, 7, 3, 5, 6, 3), step_masks(spec, 7, 2, 6, 6, 3)):
        assert not np.array_equal(masks[0], other[0])
    assert step_masks(dropout_spec(0.0), 7, 2, 5, 6, 3) is None
    assert step_masks(dropout_spec(0.5, Readout.LAST), 7, 2, 5, 6, 3)[-1].shape == (3, 8)  # (N, D*H)


def test_each_training_step_gets_its_masks() -> None:
    """train_epoch numbers the steps from where the epoch resumes, so step k + 1's masks are the
    same in a resumed epoch; the loss is the masked model's; evaluate() passes none."""
    spec = dataclasses.replace(SPEC, dropout=0.3)  # one layer: the head's input mask alone

    def masks_given(fake: NumpyBackend) -> list:
        return [call[2] for call in fake.calls if call[0] == "to_device"]

    fake, model, trainer, params = trained(spec)
    data = batches(3)
    train_epoch(fake, model, trainer, data, loss=CE, clip=0.0, carry_state=False, epoch=2, spec=spec, seed=4)
    for step, masks in enumerate(masks_given(fake), start=1):
        expected = step_masks(spec, 4, 2, step, 5, 2)
        assert len(masks) == len(expected) == 1 and np.array_equal(masks[0], expected[0])
    masked, _ = reference.forward(spec, params, data[0][0], masks=step_masks(spec, 4, 2, 1, 5, 2))
    first = next(call[2] for call in fake.calls if call[0] == "backward")
    assert first == pytest.approx(reference.loss(CE, masked, data[0][1]), rel=1e-6)
    resumed, model, trainer, _ = trained(spec)
    train_epoch(resumed, model, trainer, batches(1), loss=CE, clip=0.0, carry_state=False, epoch=2,
                stats=EpochStats(steps=2, num_targets=20), spec=spec, seed=4)
    assert np.array_equal(masks_given(resumed)[0][0], masks_given(fake)[2][0])
    plain, model, trainer, _ = trained()
    train_epoch(plain, model, trainer, batches(1), loss=CE, clip=0.0, carry_state=False, spec=SPEC, seed=4)
    assert masks_given(plain) == [None]
