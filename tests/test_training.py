"""The training protocol against a scripted backend: what is called, in which order, with what.

The fake backend returns scripted losses and gradient norms and records every call, so these
tests pin the protocol itself: state carried and detached for sequential batches, begun afresh
for independent ones, clipping by global norm, a NaN stopping training at the right step.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from seqcore.backend import Backend
from seqcore.errors import SeqcoreError
from seqcore.model.spec import Loss, ModelSpec, Readout
from seqcore.train.loop import (
    EpochStats,
    NonFiniteLoss,
    clip_factor,
    evaluate,
    step_masks,
    train_epoch,
)


class FakeBackend:
    """The device primitives, scripted; `train_span` is the seam's own loop over them."""

    name = "fake"
    train_span = Backend.train_span

    def __init__(self, losses, norms):
        self.losses, self.norms, self.calls = list(losses), list(norms), []

    def begin_state(self, model, batch_size):
        self.calls.append(("begin", batch_size))
        return ("fresh", batch_size)

    def detach_state(self, state):
        self.calls.append(("detach", state))
        return ("detached", state)

    def to_device(self, model, inputs, targets, masks, loss):
        self.masks = getattr(self, "masks", []) + [masks]
        return inputs, targets, masks

    def backward(self, model, batch, state, loss):
        self.calls.append(("fb", state))
        return self.losses.pop(0), ("after", batch[0].shape)

    def evaluate(self, model, inputs, targets, state, loss):
        self.calls.append(("eval", state))
        return self.losses.pop(0), ("after", inputs.shape)

    def grad_norm_on_device(self, model):
        return self.norms.pop(0)

    def clip_gradients(self, model, norm, max_norm):
        factor = clip_factor(norm, max_norm)  # the device's rule, decided here on the host
        if factor != 1.0:
            self.calls.append(("scale", factor))

    def read(self, figures):
        return np.array(figures, np.float64)

    def step(self, trainer):
        self.calls.append(("step",))


def batches(count, steps=5, batch=2):
    return [(np.zeros((steps, batch), np.int64), np.zeros((steps, batch), np.int64)) for _ in range(count)]


def test_clip_factor() -> None:
    assert clip_factor(0.5, 1.0) == 1.0
    assert clip_factor(4.0, 1.0) == 0.25
    assert clip_factor(4.0, 0.0) == 1.0  # 0 turns clipping off


def test_sequential_state_is_carried_and_detached() -> None:
    fake = FakeBackend([1.0, 2.0, 3.0], [0.1, 0.1, 0.1])
    train_epoch(fake, None, None, batches(3), loss=Loss.CROSS_ENTROPY, clip=1.0, carry_state=True)
    fb_states = [c[1] for c in fake.calls if c[0] == "fb"]
    assert fb_states[0] == ("fresh", 2)
    assert fb_states[1] == ("detached", ("after", (5, 2)))  # the previous batch's state, detached
    assert [c[0] for c in fake.calls].count("begin") == 1


def test_random_batches_begin_a_fresh_state_each_time() -> None:
    fake = FakeBackend([1.0, 2.0], [0.1, 0.1])
    train_epoch(fake, None, None, batches(2), loss=Loss.CROSS_ENTROPY, clip=1.0, carry_state=False)
    assert [c[1] for c in fake.calls if c[0] == "fb"] == [("fresh", 2), ("fresh", 2)]
    assert not [c for c in fake.calls if c[0] == "detach"]


def test_clipping_scales_only_large_gradients_before_the_step() -> None:
    fake = FakeBackend([1.0, 1.0], [0.5, 8.0])
    stats = train_epoch(fake, None, None, batches(2), loss=Loss.CROSS_ENTROPY, clip=2.0, carry_state=False)
    kinds = [c for c in fake.calls if c[0] in ("scale", "step")]
    assert kinds == [("step",), ("scale", 0.25), ("step",)]
    assert stats.max_grad_norm == 8.0


def test_perplexity_weights_batches_by_target_count() -> None:
    fake = FakeBackend([math.log(2.0), math.log(8.0)], [0.0, 0.0])
    data = [batches(1, steps=3)[0], batches(1, steps=1)[0]]  # 6 and 2 targets
    stats = train_epoch(fake, None, None, data, loss=Loss.CROSS_ENTROPY, clip=0.0, carry_state=False)
    expected = math.exp((6 * math.log(2.0) + 2 * math.log(8.0)) / 8)
    assert stats.num_targets == 8 and stats.perplexity == pytest.approx(expected)


def test_warmup_steps_are_left_out_of_throughput() -> None:
    fake = FakeBackend([1.0] * 3, [0.0] * 3)
    stats = train_epoch(fake, None, None, batches(3), loss=Loss.CROSS_ENTROPY, clip=0.0,
                        carry_state=False, warmup_steps=1)
    assert stats.timed_tokens == 2 * 10 and stats.num_steps == 3


@pytest.mark.parametrize("span", [1, 0])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_is_reported_at_its_step_after_its_span(bad: float, span: int) -> None:
    fake = FakeBackend([1.0, bad, 1.0], [0.1, 0.1, 0.1])
    seen = []
    with pytest.raises(NonFiniteLoss) as info:
        train_epoch(fake, None, None, batches(3), loss=Loss.CROSS_ENTROPY, clip=1.0, carry_state=True, epoch=4,
                    span=span, on_step=lambda step, value, stats: seen.append(step),
                    on_span=lambda step, stats, carry: seen.append(("span", step)))
    assert (info.value.epoch, info.value.step) == (4, 2)
    assert "epoch 4, step 2" in str(info.value)
    assert seen == ([1, ("span", 1)] if span == 1 else [1])  # the good step's figures, nothing after
    # A span does not stop at the NaN (that would need a read-back per step): span 1 ends with the
    # bad step's update, a whole-epoch span runs every step; the caller saves neither model.
    assert [c[0] for c in fake.calls].count("step") == (2 if span == 1 else 3)


def test_spans_cut_at_multiples_of_span_the_warmup_and_a_new_batch_size() -> None:
    data = batches(5) + batches(2, batch=1)
    fake = FakeBackend([1.0] * 7, [0.1] * 7)
    ends = []
    fake.train_span = lambda model, trainer, run, state, **kw: (
        ends.append(len(run)) or FakeBackend.train_span(fake, model, trainer, run, state, **kw))
    train_epoch(fake, None, None, data[1:], loss=Loss.CROSS_ENTROPY, clip=1.0, carry_state=True,
                stats=EpochStats(num_steps=1, num_targets=10), span=3, warmup_steps=2)
    # steps 2 (the warm-up ends), 3 (a span's end), 4-5 (a smaller batch follows), 6, then 7 (a new span)
    assert ends == [1, 1, 2, 1, 1]


def test_spans_give_the_same_figures_as_single_steps() -> None:
    losses, norms = [1.0, 2.0, 3.0, 4.0, 5.0], [0.5, 3.0, 0.1, 9.0, 1.0]
    results = []
    for span in (1, 2, 0):
        fake, steps = FakeBackend(losses, norms), []
        stats = train_epoch(fake, None, None, batches(5), loss=Loss.CROSS_ENTROPY, clip=2.0, carry_state=True,
                            span=span, on_step=lambda step, value, stats: steps.append((step, value)))
        results.append((steps, stats.loss_sum, stats.max_grad_norm,
                        [c for c in fake.calls if c[0] != "detach"]))
    assert results[0] == results[1] == results[2]


def test_empty_epoch_is_an_error() -> None:
    with pytest.raises(SeqcoreError):
        train_epoch(FakeBackend([], []), None, None, [], loss=Loss.CROSS_ENTROPY, clip=1.0, carry_state=True)


def test_evaluate_carries_state_and_averages() -> None:
    fake = FakeBackend([1.0, 3.0], [])
    stats = evaluate(fake, None, batches(2), loss=Loss.CROSS_ENTROPY, carry_state=True)
    assert stats.mean_loss == pytest.approx(2.0)
    assert [c[1] for c in fake.calls if c[0] == "eval"][1] == ("after", (5, 2))


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
    same in a resumed epoch; evaluate() passes none."""
    spec = dropout_spec(0.3)
    fake = FakeBackend([1.0] * 3, [0.0] * 3)
    train_epoch(fake, None, None, batches(3), loss=Loss.CROSS_ENTROPY, clip=0.0, carry_state=False, epoch=2,
                spec=spec, seed=4)
    for step, masks in enumerate(fake.masks, start=1):
        assert all(np.array_equal(a, b) for a, b in zip(masks, step_masks(spec, 4, 2, step, 5, 2)))
    resumed = FakeBackend([1.0], [0.0])
    train_epoch(resumed, None, None, batches(1), loss=Loss.CROSS_ENTROPY, clip=0.0, carry_state=False, epoch=2,
                stats=EpochStats(num_steps=2, num_targets=20), spec=spec, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(resumed.masks[0], fake.masks[2]))
    plain = FakeBackend([1.0], [0.0])
    train_epoch(plain, None, None, batches(1), loss=Loss.CROSS_ENTROPY, clip=0.0, carry_state=False,
                spec=dropout_spec(0.0), seed=4)
    assert plain.masks == [None]
