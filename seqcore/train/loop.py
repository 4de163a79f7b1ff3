"""The training protocol shared by every task and both backends.

One step: forward and backward on a batch, the loss, clipping of the gradients by their global
norm, the update. A span: steps that the backend runs by itself (`Backend.train_span`), handing
back the losses and norms once, as arrays; the core then replays each step's bookkeeping and
stops at the first NaN / inf. One epoch: spans over a stream of batches, with
the recurrent state either carried across batches (and detached, truncated backpropagation
through time) or begun afresh every batch. Batches here are TIME-MAJOR: inputs (T, N) ids or
(T, N, I) floats; targets shaped like the model's outputs without the last axis (ids) or with
it (regression); either may be a tuple of arrays the model reads (seqcore.backend: the rows are
axis 1 of the first input array, the targets counted by the first target array).

Dropout masks are drawn here, in NumPy, once per training step (`step_masks`), from a Generator
seeded with (train seed, DROPOUT_STREAM, epoch, step) alone: both backends get the same masks,
and a run resumed inside an epoch at step k + 1 draws step k + 1's masks with no saved state.
An encoder-decoder's masks (seqcore.model.seq2seq.draw_masks) take the batch's source and target
lengths, read from its tuple inputs (source ids (T_src, N), lengths, decoder inputs (T_tgt, N)).
Evaluation, generation and prediction never apply dropout.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable, Iterable, Iterator, Optional

import numpy as np

from seqcore.backend import Arrays, Backend, Model, State, Trainer, first_array, num_rows
from seqcore.errors import SeqcoreError
from seqcore.model import seq2seq
from seqcore.model.dropout import draw_masks
from seqcore.model.spec import Loss, ModelSpec

Batch = tuple[Arrays, Arrays]  # inputs, targets: arrays or tuples of arrays (seqcore.backend)
DROPOUT_STREAM = 3  # masks of (epoch e, step s) from (seed, 3, e, s); batches use (seed, 1), text (seed, 2)


def step_masks(spec: ModelSpec, seed: int, epoch: int, step: int, num_steps: int,
               batch_size: int) -> Optional[list[np.ndarray]]:
    """The dropout masks of training step `step` (from 1) of `epoch` (from 1), for the whole
    batch of `batch_size` rows and `num_steps` time steps; None when spec.dropout is 0.

    One (T, N, D*H) mask per layer after the first, then the head's input mask: (T, N, D*H) for a
    SEQUENCE readout, (N, D*H) for LAST (seqcore.model.dropout.draw_masks). A worker that trains on some
    rows of the batch takes the same rows of every mask: axis 1 of the (T, N, .) masks, axis 0 of
    the (N, .) one.
    """
    if not spec.dropout:
        return None
    rng = np.random.default_rng([seed, DROPOUT_STREAM, epoch, step])
    return draw_masks(spec, rng, num_steps, batch_size)


def batch_masks(spec: Optional[ModelSpec | seq2seq.Seq2SeqSpec], seed: int, epoch: int, step: int,
                inputs: Arrays) -> Optional[list[np.ndarray]]:
    """`step_masks` for one batch's inputs; for an encoder-decoder its masks of (T_src, T_tgt, N)."""
    if spec is None or not spec.dropout:
        return None
    if isinstance(spec, seq2seq.Seq2SeqSpec):
        source, _, decoder_inputs = inputs
        rng = np.random.default_rng([seed, DROPOUT_STREAM, epoch, step])
        return seq2seq.draw_masks(spec, rng, np.shape(source)[0], np.shape(decoder_inputs)[0], np.shape(source)[1])
    return step_masks(spec, seed, epoch, step, *np.shape(first_array(inputs))[:2])


class NonFiniteLoss(SeqcoreError):
    """The loss became NaN or infinite, or passed `limit` (divergence); `step` counts batches
    from 1 within the epoch. Raised after its span: the model is past that step and must not be
    saved (the last good checkpoint stays)."""

    def __init__(self, value: float, epoch: int, step: int, limit: Optional[float] = None):
        self.value, self.epoch, self.step, self.limit = value, epoch, step, limit
        super().__init__(f"{self.what()} at epoch {epoch}, step {step}; training stopped.")

    def what(self) -> str:
        if self.limit is None:
            return f"The loss became {self.value}"
        return f"The loss reached {self.value:.4g}, above the divergence limit {self.limit:.4g}"

    def explain(self, checkpoint: Optional[object] = None, saved_epoch: Optional[int] = None) -> SeqcoreError:
        """The sentence a task ends with: where it stopped, what was kept, what to try."""
        kept = ""
        if checkpoint is not None:
            kept = (f" The last good checkpoint (epoch {saved_epoch}) is kept at {checkpoint}." if saved_epoch
                    else " This run had written no checkpoint yet.")
        return SeqcoreError(f"{self.what()} at epoch {self.epoch}, step {self.step}; "
                            f"training stopped.{kept} Try a lower --lr or clipping (--clip).")


def num_targets(targets: Arrays, loss: Loss) -> int:
    """The targets a batch's mean loss is taken over: every entry of the (first) target array,
    less its last axis for MSE (one target is a vector there); for Loss.MASKED the real tokens
    of (target ids (T, N), valid lengths (N,)), the positions before each valid length."""
    if loss == Loss.MASKED and isinstance(targets, tuple):
        steps = np.shape(targets[0])[0]
        return int(np.minimum(np.asarray(targets[1]), steps).sum())
    shape = np.shape(first_array(targets))
    return int(np.prod(shape[:-1] if loss == Loss.MSE else shape))


def clip_factor(norm: float, max_norm: float) -> float:
    """Scale that brings the gradients' global norm down to `max_norm` (1 when under it or off):
    the rule `Backend.clip_gradients` applies on the device, here for the host."""
    if max_norm <= 0 or norm <= max_norm:
        return 1.0
    return max_norm / norm


@dataclasses.dataclass
class EpochStats:
    """Sums over one epoch. `timed_*` leave out the warm-up step (see `train_epoch`)."""

    loss_sum: float = 0.0  # mean batch loss x number of targets, summed
    num_targets: int = 0
    steps: int = 0  # training steps (updates) taken
    timed_tokens: int = 0
    timed_seconds: float = 0.0
    max_grad_norm: float = 0.0

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.num_targets, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.mean_loss, 700.0))  # exp overflows float64 past ~709

    @property
    def tokens_per_second(self) -> float:
        return self.timed_tokens / self.timed_seconds if self.timed_seconds > 0 else float("nan")


@dataclasses.dataclass
class Carry:
    """The recurrent state one epoch hands from a batch to the next, and its batch size."""

    state: State
    batch_size: int


StepCallback = Callable[[int, float, EpochStats], None]
SpanCallback = Callable[[int, EpochStats, Optional[Carry]], None]


def spans(batches: Iterable[Batch], span: int, first: int, warmup_steps: int) -> Iterator[list[Batch]]:
    """The batches in runs ending at the epoch's steps k x `span` (0: one run), also cut after step
    `warmup_steps` (so that the throughput leaves it out exactly) and where the batch size changes
    (a span carries one state shape); steps are numbered from `first`."""
    run: list[Batch] = []
    for step, batch in enumerate(batches, start=first):
        if run and ((span and (step - 1) % span == 0) or step == warmup_steps + 1
                    or num_rows(batch[0]) != num_rows(run[0][0])):
            yield run
            run = []
        run.append(batch)
    if run:
        yield run


def train_epoch(backend: Backend, model: Model, trainer: Trainer, batches: Iterable[Batch], *,
                loss: Loss, clip: float, carry_state: bool, epoch: int = 1, warmup_steps: int = 0,
                span: int = 1, rates: Optional[Callable[[int], list[float]]] = None,
                on_step: Optional[StepCallback] = None, on_span: Optional[SpanCallback] = None,
                stats: Optional[EpochStats] = None, carry: Optional[Carry] = None,
                spec: Optional[ModelSpec] = None, seed: int = 0) -> EpochStats:
    """Train over `batches` once, `span` steps per `Backend.train_span` call (0: the whole epoch).

    A span's batches go to the device at once and its losses and gradient norms come back once,
    as arrays; the per-step bookkeeping then replays from them. On the CPU the numbers are those of
    span 1, bit for bit; on a GPU a span saves the two host synchronisations of every step.
    carry_state: True when row i of a batch continues row i of the previous one (sequential
    partitioning): the state is carried and detached; False for independent batches.
    warmup_steps: leading steps left out of the throughput figure (graph building, allocation).
    rates(count): the learning rates of the next `count` updates; None keeps the trainer's.
    on_step(step, loss, stats) runs for each step of a span after the span; on_span(step, stats,
    carry) after the span's last step (the model then holds that step's weights). An exception
    from either stops the epoch; stop from on_span alone to stop after a whole span. To continue
    an epoch stopped after step k (a span's end), pass the batches from k + 1 on with the stats
    and carry that on_span saw at step k.
    A NaN or infinite loss raises NonFiniteLoss with its step, after the good steps before it
    were replayed; the model is then past that step (a span does not stop inside), so nothing
    may be saved from it.
    spec, seed: the model's spec and the run's seed, for the dropout masks (`step_masks`); no
    dropout without a spec.
    """
    stats = stats or EpochStats()
    first = stats.steps + 1
    for run in spans(batches, span, first, warmup_steps):
        started = time.perf_counter()
        batch_size = num_rows(run[0][0])
        state = carry.state if carry_state and carry is not None and batch_size == carry.batch_size else None
        work = [(inputs, targets, batch_masks(spec, seed, epoch, first + k, inputs))
                for k, (inputs, targets) in enumerate(run)]
        losses, norms, state = backend.train_span(model, trainer, work, state, loss=loss, clip=clip,
                                                  lrs=rates(len(run)) if rates is not None else None,
                                                  carry_state=carry_state)
        elapsed = time.perf_counter() - started  # the arrays' read-out synchronises the device
        carry = Carry(state, batch_size) if carry_state else None
        for k, (inputs, targets) in enumerate(run):
            step, value, norm = first + k, float(losses[k]), float(norms[k])
            if not math.isfinite(value):
                raise NonFiniteLoss(value, epoch, step)
            count = num_targets(targets, loss)
            stats.loss_sum += value * count
            stats.num_targets += count
            stats.steps += 1
            stats.max_grad_norm = max(stats.max_grad_norm, norm)
            if step > warmup_steps:  # spans are cut after the warm-up steps
                stats.timed_tokens += int(np.prod(np.shape(first_array(inputs))[:2]))
                stats.timed_seconds += elapsed / len(run)
            if on_step is not None:
                on_step(step, value, stats)
        first += len(run)
        if on_span is not None:
            on_span(first - 1, stats, carry)
    if stats.steps == 0:
        raise SeqcoreError("The training data gave no batch; use a longer text or smaller batches.")
    return stats


def evaluate(backend: Backend, model: Model, batches: Iterable[Batch], *, loss: Loss,
             carry_state: bool) -> EpochStats:
    """Mean loss over `batches` without gradients; the state is carried like in training."""
    stats = EpochStats()
    state: Optional[State] = None
    for inputs, targets in batches:
        if not carry_state or state is None:
            state = backend.begin_state(model, num_rows(inputs))
        value, state = backend.evaluate(model, inputs, targets, state, loss)
        count = num_targets(targets, loss)
        stats.loss_sum += value * count
        stats.num_targets += count
        stats.steps += 1
    return stats
