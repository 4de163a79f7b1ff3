"""The Backend one data-parallel worker trains through: global batches, states and losses outside,
this worker's rows inside (see seqcore.parallel.distributed for the scheme and the communicator).
"""
from __future__ import annotations

import dataclasses
import signal
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from seqcore.backend import Backend, Model, State, Trainer
from seqcore.model.spec import Loss, ModelSpec, Readout
from seqcore.parallel.distributed import Communicator, gather, lost_peers
from seqcore.train.loop import train_steps

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # the first one asked on any rank names the stop


@dataclasses.dataclass
class LocalRows:
    """A carried recurrent state holding this worker's rows only (the global batch had `batch_size`)."""

    state: State
    batch_size: int


def row_blocks(batch_size: int, size: int) -> list[tuple[int, int]]:
    """[start, stop) of each worker's rows: contiguous, sizes differ by at most one (a short last
    batch); a worker left without a row gets an empty block."""
    bounds = [batch_size * r // size for r in range(size + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


class DistributedBackend:
    """`seqcore.backend.Backend` for one worker of N: the same methods, global shapes outside.

    Batches, states handed in and losses handed back are the global ones; the inner backend sees
    this worker's rows. The only collective per step besides the gradients' is the loss sum.
    """

    def __init__(self, backend: Backend, comm: Communicator, spec: ModelSpec):
        self.inner, self.comm, self.world, self.spec = backend, comm, comm.world, spec
        self.name = backend.name
        # A stop asked on any rank (the number of the signal that asked), agreed on with the step's
        # loss sum: every rank then stops after the same step, without a collective of its own.
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

    def forward(self, model: Model, inputs: np.ndarray, state: State):
        return self.inner.forward(self.comm.unwrap(model), inputs, state)  # evaluation: every rank, all rows

    def evaluate(self, model: Model, inputs: np.ndarray, targets: np.ndarray, state: State, loss: Loss):
        return self.inner.evaluate(self.comm.unwrap(model), inputs, targets, state, loss)

    def gradients(self, model: Model) -> dict[str, np.ndarray]:
        return self.inner.gradients(self.comm.unwrap(model))

    def grad_norm(self, model: Model) -> float:
        return self.inner.grad_norm(self.comm.unwrap(model))  # of the summed gradients: global

    def scale_gradients(self, model: Model, factor: float) -> None:
        self.inner.scale_gradients(self.comm.unwrap(model), factor)

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

    def train_span(self, model: Model, trainer: Trainer, batches: Sequence[tuple[np.ndarray, np.ndarray, Any]],
                   state: Optional[State], *, loss: Loss, clip: float, lrs: Optional[Sequence[float]],
                   carry_state: bool) -> tuple[np.ndarray, np.ndarray, State]:
        """Step by step: every step's gradients and loss are summed across the workers anyway (and
        the stop flag travels with the loss), so a span here saves no synchronisation."""
        return train_steps(self, model, trainer, batches, state, loss=loss, clip=clip, lrs=lrs,
                           carry_state=carry_state)

    def forward_backward(self, model: Model, inputs: np.ndarray, targets: np.ndarray, state: State,
                         loss: Loss, masks: Any = None) -> tuple[float, State]:
        batch_size = inputs.shape[1]  # inputs (T, B, ...)
        start, stop = row_blocks(batch_size, self.world.size)[self.world.rank]
        weight = (stop - start) / batch_size
        if stop == start:  # fewer rows than workers (a short last batch): row 0, weighted 0
            start, stop = 0, 1
        rows = slice(start, stop)
        plain = self.comm.unwrap(model)
        if isinstance(state, LocalRows):
            local = state.state
        else:  # a fresh or resumed global state: this worker's rows of it
            local = self.inner.state_from_numpy(plain, [a[:, rows] for a in self.inner.state_to_numpy(state)])
        by_time = self.spec.readout is Readout.SEQUENCE  # targets (T, B, ...) or (B, ...)
        local_targets = targets[:, rows] if by_time else targets[rows]
        self.comm.set_weight(weight)
        extra = {} if masks is None else {"masks": _rows_of(masks, rows)}
        try:  # DDP sums the gradients inside backward: a lost peer surfaces there as the framework's error
            value, local = self.inner.forward_backward(model, inputs[:, rows], local_targets, local, loss, **extra)
            self.comm.sum_gradients(model)
            asked = self.stop_requested()
            figures = [value * weight, *(1.0 if asked == signum else 0.0 for signum in STOP_SIGNALS)]
            total, *stops = self.comm.all_sum(np.array(figures, np.float64))
            self.stop_agreed = next((signum for signum, count in zip(STOP_SIGNALS, stops) if count > 0), None)
        except Exception as error:
            raise lost_peers(self.world, error) from None
        return float(total), LocalRows(local, batch_size)


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
