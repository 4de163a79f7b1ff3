"""seqcore.distributed.Communicator on MXNet: the dist_sync KVStore (ps-lite), started by tasks.launch.

The servers only add: no optimizer is set on the KVStore, so a server stores the sum of what the
workers pushed, and every worker pulls the same sum. Each worker scales its gradients by its share
of the batch's rows, pushes and pulls them (one key per parameter), and then clips and updates
with seqcore's own rules, identically on every worker. ps-lite has no timeouts of its own: a
watchdog thread ends this worker with one sentence when a start-up or a collective waits longer
than `timeout_s` (a dead peer, an unreachable scheduler).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time

import mxnet as mx
import numpy as np

from seqcore.errors import SeqcoreError
from seqcore.parallel.distributed import World

from .model import SequenceModel

SUM_KEYS = 1_000_000  # keys of all_sum buffers start here; gradients use 0..P-1


class Communicator:
    def __init__(self, device: str, timeout_s: float):
        address = f"{os.environ.get('DMLC_PS_ROOT_URI')}:{os.environ.get('DMLC_PS_ROOT_PORT')}"
        self._watchdog = _Watchdog(timeout_s)
        with self._watchdog.watch(f"joining the scheduler at {address}"):
            try:
                self.kv = mx.kv.create("dist_sync")
            except mx.base.MXNetError as error:
                raise SeqcoreError(f"Cannot join the scheduler at {address} ({_first_line(error)}).") from None
        self.world = World(self.kv.rank, self.kv.num_workers)
        self._weight = 1.0
        self._grad_keys: list[int] = []
        self._sum_keys: dict[tuple, int] = {}  # (shape, dtype) -> key, made in the same order on every rank

    def wrap_model(self, model: SequenceModel) -> SequenceModel:
        params = list(model.parameter_map().values())
        self._grad_keys = list(range(len(params)))
        with self._watchdog.watch("creating the gradient keys"):
            self.kv.init(self._grad_keys, [mx.nd.zeros(p.shape, dtype=np.float32) for p in params])
        return model

    def unwrap(self, model: SequenceModel) -> SequenceModel:
        return model

    def set_weight(self, weight: float) -> None:
        self._weight = weight

    def sum_gradients(self, model: SequenceModel) -> None:
        grads = [param.grad() for param in model.parameter_map().values()]  # the buffers the trainer reads
        if self._weight != 1.0:
            for grad in grads:
                grad *= self._weight
        views = [grad.as_nd_ndarray() for grad in grads]  # the same memory, as classic NDArrays
        with self._watchdog.watch("summing the gradients"):
            self.kv.pushpull(self._grad_keys, views)  # in place: each view becomes the sum over workers
            for view in views:
                view.wait_to_read()

    def all_sum(self, array: np.ndarray) -> np.ndarray:
        array = np.asarray(array)
        shape = (array.shape, array.dtype.str)
        with self._watchdog.watch("summing figures across workers"):
            if shape not in self._sum_keys:
                self._sum_keys[shape] = SUM_KEYS + len(self._sum_keys)
                self.kv.init(self._sum_keys[shape], mx.nd.zeros(array.shape, dtype=array.dtype))
            buffer = mx.nd.array(array, dtype=array.dtype)
            self.kv.pushpull(self._sum_keys[shape], buffer)  # in place (pushpull's `out` also overwrites it)
            return buffer.asnumpy()

    def close(self) -> None:
        # ps-lite's finalisation waits at a barrier for every worker: at the end of a run they all come.
        with self._watchdog.watch("leaving the other workers"):
            self.kv = None


def create_communicator(device: str, timeout_s: float) -> Communicator:
    return Communicator(device, timeout_s)


class _Watchdog:
    """Ends the process with one sentence when a watched wait passes its deadline."""

    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self._what, self._deadline = "", None
        threading.Thread(target=self._watch, daemon=True, name="seqcore-watchdog").start()

    @contextlib.contextmanager
    def watch(self, what: str):
        self._what, self._deadline = what, time.monotonic() + self.timeout_s
        try:
            yield
        finally:
            self._deadline = None

    def _watch(self) -> None:
        while True:
            time.sleep(0.5)
            deadline = self._deadline
            if deadline is not None and time.monotonic() > deadline:
                sys.stderr.write(f"error: no answer from the other workers within {self.timeout_s:.0f} s while "
                                 f"{self._what}; a worker, server or the scheduler is gone or unreachable.\n")
                sys.stderr.flush()
                os._exit(2)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
