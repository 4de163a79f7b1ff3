"""The Backend one data-parallel worker trains through: global batches, states and losses outside,
this worker's rows inside (see seqcore.parallel.distributed for the scheme and the communicator).
Its primitives cut the rows, sum the gradients and the losses; the span loop is the base class's.
"""
from __future__ import annotations

import dataclasses
import signal
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from seqcore.backend import Arrays, Backend, Masks, Model, OnDevice, Scalar, State, Trainer, num_rows
from seqcore.model.spec import Loss, ModelSpec, Readout
from seqcore.parallel.distributed import Communicator, gather, lost_peers

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # the first one asked on any rank names the stop


@dataclasses.dataclass
class LocalRows:
    """A carried recurrent state holding this worker's rows only (the global batch had `batch_size`)."""

    state: State
    batch_size: int


@dataclasses.dataclass
class _Rows:
    """A global batch's rows of this worker, on the device: `rows` of `batch_size`, weighted `weight`
    (its share of the rows) in the summed gradient and loss."""

    batch: OnDevice
    rows: slice
    batch_size: int
    weight: float


@dataclasses.dataclass
class _Share:
    """This worker's loss of a step, to be summed over the workers (weighted) when read."""

    value: Scalar
    weight: float


def row_blocks(batch_size: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) of each worker's rows: contiguous, sizes differ by at most one (a short last
    batch); a worker left without a row gets an empty block."""
    bounds = [batch_size * r // size for r in range(size + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


class DistributedBackend(Backend):
    """`seqcore.backend.Backend` for one worker of N: the same methods, global shapes outside.

    Batches, states handed in and losses handed back are the global ones; the inner backend sees
    this worker's rows. Per step the gradients are summed (inside or right after backward); the
    losses of a span are summed once, when read, in one collective that also carries the stop
    flag, so every rank stops after the same span.
    """

    def __init__(self, backend: Backend, comm: Communicator, spec: ModelSpec):
        self.inner, self.comm, self.world, self.spec = backend, comm, comm.world, spec
        self.name = backend.name
        # A stop asked on any rank (the number of the signal that asked), agreed on with the losses'
        # sum: every rank then stops after the same span, without a collective of its own.
        self.stop_requested: Callable[[], Optional[int]] = lambda: None
        self.stop_agreed: Optional[int] = None

    # pass-through, on the plain model
    def versions(self) -> dict[str, str]:
        return self.inner.versions()

    def resolve_device(self, device):
        return self.inner.resolve_device(device)

    def build_model(self, spec: ModelSpec, params: Mapping[str, np.ndarray], device: str) -> Model:
        return self.comm.wrap_model(self.inner.build_model(spec, params, device))

    def export_params(self, model: Model) -> dict[str, np.ndarray]:
        return self.inner.export_params(self.comm.unwrap(model))

    def begin_state(self, model: Model, batch_size: int) -> State:
        return self.inner.begin_state(self.comm.unwrap(model), batch_size)

    def forward(self, model: Model, inputs: Arrays, state: Optional[State]):
        return self.inner.forward(self.comm.unwrap(model), inputs, state)  # evaluation: every rank, all rows

    def evaluate(self, model: Model, inputs: Arrays, targets: Arrays, state: Optional[State], loss: Loss):
        return self.inner.evaluate(self.comm.unwrap(model), inputs, targets, state, loss)

    def grad_norm_on_device(self, model: Model) -> Scalar:
        return self.inner.grad_norm_on_device(self.comm.unwrap(model))  # of the summed gradients: global

    def clip_gradients(self, model: Model, norm: Scalar, max_norm: float) -> None:
        self.inner.clip_gradients(self.comm.unwrap(model), norm, max_norm)

    def make_trainer(self, model: Model, optimizer, lr: float) -> Trainer:
        return self.inner.make_trainer(self.comm.unwrap(model), optimizer, lr)

    def step(self, trainer: Trainer) -> None:
        self.inner.step(trainer)

    def set_lr(self, trainer: Trainer, lr: float) -> None:
        self.inner.set_lr(trainer, lr)

    def export_trainer_state(self, model: Model, trainer: Trainer) -> dict[str, np.ndarray]:
        return self.inner.export_trainer_state(self.comm.unwrap(model), trainer)

    def load_trainer_state(self, model: Model, trainer: Trainer, arrays: Mapping[str, np.ndarray]) -> None:
        self.inner.load_trainer_state(self.comm.unwrap(model), trainer, arrays)

    def state_from_numpy(self, model: Model, arrays: Sequence[np.ndarray]) -> State:
        return self.inner.state_from_numpy(self.comm.unwrap(model), arrays)  # global rows, cut at the next step

    # the rows of this worker
    def detach_state(self, state: State) -> State:
        if isinstance(state, LocalRows):
            return LocalRows(self.inner.detach_state(state.state), state.batch_size)
        return self.inner.detach_state(state)

    def state_to_numpy(self, state: State) -> list[np.ndarray]:
        """Global (L, B, H) arrays; for a carried state, gathered from every rank (a collective)."""
        if not isinstance(state, LocalRows):
            return self.inner.state_to_numpy(state)
        return [np.concatenate(list(gather(self.comm, part)), axis=1)  # (N, L, B/N, H) -> (L, B, H)
                for part in self.inner.state_to_numpy(state.state)]

    def to_device(self, model: Model, inputs: Arrays, targets: Arrays, masks: Masks, loss: Loss) -> _Rows:
        batch_size = num_rows(inputs)
        start, stop = row_blocks(batch_size, self.world.size)[self.world.rank]
        weight = _share(targets, loss, start, stop, batch_size)
        if stop == start:  # fewer rows than workers (a short last batch): row 0, weighted 0
            start, stop = 0, 1
        rows = slice(start, stop)
        # single targets (T, B, ...) or (B, ...); a tuple's arrays are cut by their own rank
        by_time = isinstance(targets, tuple) or self.spec.readout is Readout.SEQUENCE
        batch = self.inner.to_device(self.comm.unwrap(model), _batch_rows(inputs, rows, True),
                                     _batch_rows(targets, rows, by_time), _rows_of(masks, rows), loss)
        return _Rows(batch, rows, batch_size, weight)

    def backward(self, model: Model, batch: _Rows, state: State, loss: Loss) -> tuple[_Share, LocalRows]:
        if isinstance(state, LocalRows):
            local = state.state
        else:  # a fresh or resumed global state: this worker's rows of it
            plain = self.comm.unwrap(model)
            local = self.inner.state_from_numpy(plain, [a[:, batch.rows] for a in self.inner.state_to_numpy(state)])
        self.comm.set_weight(batch.weight)
        try:  # DDP sums the gradients inside backward: a lost peer surfaces there as the framework's error
            value, local = self.inner.backward(model, batch.batch, local, loss)
            self.comm.sum_gradients(model)
        except Exception as error:
            raise lost_peers(self.world, error) from None
        return _Share(value, batch.weight), LocalRows(local, batch.batch_size)

    def read(self, figures: Sequence[Any]) -> np.ndarray:
        """This worker's figures, each loss then summed over the workers (weighted by their rows)
        with the stop flags riding along: one collective per read that holds a loss."""
        shares = [k for k, figure in enumerate(figures) if isinstance(figure, _Share)]
        values = self.inner.read([figure.value if isinstance(figure, _Share) else figure for figure in figures])
        if not shares:
            return values  # norms of the summed gradients: global already
        asked = self.stop_requested()
        local = [values[k] * figures[k].weight for k in shares]
        stops = [1.0 if asked == signum else 0.0 for signum in STOP_SIGNALS]
        try:
            summed = self.comm.all_sum(np.array([*local, *stops], np.float64))
        except Exception as error:
            raise lost_peers(self.world, error) from None
        values[shares] = summed[:len(shares)]
        counts = summed[len(shares):]
        self.stop_agreed = next((signum for signum, count in zip(STOP_SIGNALS, counts) if count > 0), None)
        return values


def _share(targets: Arrays, loss: Loss, start: int, stop: int, batch_size: int) -> float:
    """This worker's weight in the summed gradient and loss: its share of the rows, or for
    Loss.MASKED (a mean over the real target tokens) its share of the batch's real tokens, so that
    the sum is the one-process mean over all of them."""
    if Loss(loss) is Loss.MASKED and isinstance(targets, tuple):
        steps = np.shape(targets[0])[0]
        tokens = np.minimum(np.asarray(targets[1]), steps)  # (B,) real tokens of each row
        return float(tokens[start:stop].sum() / tokens.sum())
    return (stop - start) / batch_size


def _batch_rows(part: Arrays, rows: slice, by_time: bool) -> Arrays:
    """This worker's rows of a global batch's inputs or targets: a single array by axis 1 when
    `by_time` (time-major), else by axis 0; in a tuple, (N,) arrays (lengths) by axis 0 and the
    others, time-major, by axis 1."""
    if isinstance(part, tuple):
        return tuple(_batch_rows(value, rows, np.ndim(value) > 1) for value in part)
    array = np.asarray(part)
    return array[:, rows] if by_time else array[rows]


def _rows_of(masks: Any, rows: slice) -> Any:
    """This worker's rows of dropout masks drawn for the global batch: (T, B, .) by axis 1, (B, .) by 0."""
    if masks is None:
        return None
    if isinstance(masks, Mapping):
        return {key: _rows_of(value, rows) for key, value in masks.items()}
    if isinstance(masks, (list, tuple)):
        return type(masks)(_rows_of(value, rows) for value in masks)
    array = np.asarray(masks)
    return array[:, rows] if array.ndim == 3 else array[rows]
