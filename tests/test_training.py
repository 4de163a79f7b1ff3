"""The training protocol against a scripted backend: what is called, in which order, with what.

The fake backend returns scripted losses and gradient norms and records every call, so these
tests pin the protocol itself: state carried and detached for sequential batches, begun afresh
for independent ones, clipping by global norm, a NaN stopping training at the right step.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from seqcore.errors import SeqcoreError
from seqcore.specs import Loss
from seqcore.training import NonFiniteLoss, clip_factor, evaluate, train_epoch


class FakeBackend:
    name = "fake"

    def __init__(self, losses, norms):
        self.losses, self.norms, self.calls = list(losses), list(norms), []

    def begin_state(self, model, batch_size):
        self.calls.append(("begin", batch_size))
        return ("fresh", batch_size)

    def detach_state(self, state):
        self.calls.append(("detach", state))
        return ("detached", state)

    def forward_backward(self, model, inputs, targets, state, loss):
        self.calls.append(("fb", state))
        return self.losses.pop(0), ("after", inputs.shape)

    def evaluate(self, model, inputs, targets, state, loss):
        self.calls.append(("eval", state))
        return self.losses.pop(0), ("after", inputs.shape)

    def grad_norm(self, model):
        return self.norms.pop(0)

    def scale_gradients(self, model, factor):
        self.calls.append(("scale", factor))

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


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_before_the_update(bad: float) -> None:
    fake = FakeBackend([1.0, bad, 1.0], [0.1, 0.1, 0.1])
    with pytest.raises(NonFiniteLoss) as info:
        train_epoch(fake, None, None, batches(3), loss=Loss.CROSS_ENTROPY, clip=1.0, carry_state=True, epoch=4)
    assert (info.value.epoch, info.value.step) == (4, 2)
    assert "epoch 4, step 2" in str(info.value)
    assert [c[0] for c in fake.calls].count("step") == 1  # the bad gradients were never applied


def test_empty_epoch_is_an_error() -> None:
    with pytest.raises(SeqcoreError):
        train_epoch(FakeBackend([], []), None, None, [], loss=Loss.CROSS_ENTROPY, clip=1.0, carry_state=True)


def test_evaluate_carries_state_and_averages() -> None:
    fake = FakeBackend([1.0, 3.0], [])
    stats = evaluate(fake, None, batches(2), loss=Loss.CROSS_ENTROPY, carry_state=True)
    assert stats.mean_loss == pytest.approx(2.0)
    assert [c[1] for c in fake.calls if c[0] == "eval"][1] == ("after", (5, 2))
