"""Data-parallel training, neutral part: N workers, each on its own rows of every global batch, equal
to one process on the whole batch.

A batch (T, B, ...) is cut by rows into N contiguous blocks; under sequential partitioning worker r
keeps the recurrent state of its own block. Each worker takes the mean loss of its rows; its
gradients enter the global gradient weighted by its share of the rows (1/N for an even split), so
the global gradient is exactly the one-process gradient of the mean over all B rows. The reported
loss, the clipping norm (taken on the summed gradients), divergence checks and metrics are global
figures, the same on every rank; so is every update, so the weights stay equal across ranks.

A worker trains through seqcore.parallel.data_parallel.DistributedBackend. The frameworks' own engines do
the communication (`backends.<name>.distributed.Communicator`: DistributedDataParallel over gloo or
NCCL, MXNet's dist_sync KVStore); everything here speaks NumPy through one collective, `all_sum`. The world is read from the environment the launchers set:
torchrun's RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT, or MXNet's DMLC_* (tasks.launch).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
from typing import Any, Mapping, Optional, Protocol

import numpy as np

from seqcore.backend import Model, load_part
from seqcore.errors import SeqcoreError

TIMEOUT_ENV = "SEQCORE_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 120.0  # a collective (or the start-up) waits at most this long for the others
DMLC_NEEDED = ("DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER", "DMLC_NUM_WORKER")


@dataclasses.dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_writer(self) -> bool:
        """Rank 0 alone writes the run folder and shows progress."""
        return self.rank == 0


class Communicator(Protocol):
    """What a backend's `distributed.create_communicator(device, timeout_s)` returns."""

    world: World

    def wrap_model(self, model: Model) -> Model:
        """The handle `Backend.backward` trains through (DistributedDataParallel, or the model)."""

    def unwrap(self, model: Model) -> Model:
        """The plain model behind a `wrap_model` handle."""

    def set_weight(self, weight: float) -> None:
        """This worker's share of the next gradient: its rows / the batch's rows."""

    def sum_gradients(self, model: Model) -> None:
        """After backward: every gradient becomes sum over workers of weight x gradient."""

    def all_sum(self, array: np.ndarray) -> np.ndarray:
        """The element-wise sum of `array` (same shape on every rank) over all ranks."""

    def close(self) -> None:
        """Leave the group (after the run)."""


def environment_size(environ: Mapping[str, str] = os.environ) -> int:
    """The number of workers the launcher announced (1 when none did), read without a framework."""
    if "WORLD_SIZE" in environ:
        return _whole(environ, "WORLD_SIZE")
    if environ.get("DMLC_ROLE") == "worker":
        return _whole(environ, "DMLC_NUM_WORKER") if "DMLC_NUM_WORKER" in environ else 1
    return 1


def check_environment(backend: str, environ: Mapping[str, str] = os.environ) -> None:
    """One sentence for a launch environment the chosen framework cannot use."""
    if "WORLD_SIZE" in environ and environment_size(environ) > 1:
        if backend != "torch":
            raise SeqcoreError(f"torchrun launches the torch backend only; start --backend {backend} "
                               f"with python -m tasks.launch.")
        for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if not environ.get(name):
                raise SeqcoreError(f"WORLD_SIZE is set but {name} is not: start the workers with torchrun.")
        _whole(environ, "RANK")
        _whole(environ, "MASTER_PORT")
    elif environ.get("DMLC_ROLE") == "worker":
        if backend != "mxnet":
            raise SeqcoreError(f"tasks.launch (DMLC_ROLE) launches the mxnet backend only; start --backend "
                               f"{backend} with torchrun.")
        for name in DMLC_NEEDED:
            if not environ.get(name):
                raise SeqcoreError(f"DMLC_ROLE=worker is set but {name} is not: the scheduler's address is "
                                   f"missing; start the workers with python -m tasks.launch.")
        for name in DMLC_NEEDED[1:]:
            _whole(environ, name)


def _whole(environ: Mapping[str, str], name: str) -> int:
    try:
        value = int(environ[name])
    except ValueError:
        raise SeqcoreError(f"{name} must be a whole number, got {environ[name]!r}.") from None
    if value < 0 or (name != "RANK" and value == 0):
        raise SeqcoreError(f"{name} must be {'zero or more' if name == 'RANK' else 'positive'}, got {value}.")
    return value


def check_rows(batch_size: int, size: int) -> None:
    """The global batch must split into equal blocks of rows."""
    if size > batch_size:
        rows, most = ("1 row", "1 worker (one process)") if batch_size == 1 else (f"{batch_size} rows",
                                                                              f"{batch_size} workers")
        raise SeqcoreError(f"{size} workers are more than the batch's {rows}; use at most {most} or a larger "
                           f"--batch-size.")
    if batch_size % size:
        raise SeqcoreError(f"The batch of {batch_size} rows does not divide evenly among {size} workers; "
                           f"use a --batch-size that is a multiple of {size}.")


def timeout_s(environ: Mapping[str, str] = os.environ) -> float:
    """$SEQCORE_DIST_TIMEOUT_S: a finite positive number of seconds (inf would wait forever, and the
    frameworks refuse it with an error that blames the rendezvous)."""
    text = environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise SeqcoreError(f"{TIMEOUT_ENV} must be a positive, finite number of seconds, got {environ[TIMEOUT_ENV]!r}.")
    return value


def join(backend: str, device: str) -> Optional[Communicator]:
    """The communicator of this worker, or None for a single process. Ranks above 0 print nothing
    to stdout from here on: their figures are rank 0's."""
    if environment_size() <= 1:
        return None
    check_environment(backend)
    communicator = load_part(backend, "distributed").create_communicator(device, timeout_s())
    if not communicator.world.is_writer:
        sys.stdout = open(os.devnull, "w")  # the worker process exists for this run only
    return communicator


# -- collectives built on all_sum ------------------------------------------------------------------

def all_sum(comm: Communicator, array: np.ndarray) -> np.ndarray:
    """comm.all_sum, with a lost peer (the framework's own error) said in one sentence."""
    try:
        return comm.all_sum(array)
    except Exception as error:
        raise lost_peers(comm.world, error) from None


def lost_peers(world: World, error: Exception) -> SeqcoreError:
    if isinstance(error, SeqcoreError):
        return error
    # Mostly a peer that died (gloo: "Connection closed by peer"); the framework's first line says.
    return SeqcoreError(f"Worker {world.rank} failed while training with the other workers "
                        f"({_first_line(error)}); the last checkpoint resumes the run.")


def gather(comm: Communicator, array: np.ndarray) -> np.ndarray:
    """(size, *shape): every rank's `array`, stacked in rank order (x + 0 is exact)."""
    slots = np.zeros((comm.world.size, *array.shape), array.dtype)
    slots[comm.world.rank] = array
    return all_sum(comm, slots)


MESSAGE_BYTES = 1024  # the longest sentence `settle` passes on


def settle(comm: Communicator, error: Optional[BaseException]) -> None:
    """After the steps before training that may fail on some ranks only (rank 0's folder checks):
    every rank learns whether one failed, and raises the first failed rank's sentence, so that all
    end alike and none waits for a rank that is gone."""
    if isinstance(error, SeqcoreError):
        text = str(error)
    else:
        text = f"Worker {comm.world.rank} stopped before training ({type(error).__name__})." if error else ""
    encoded = text.encode("utf-8")[:MESSAGE_BYTES]
    mine = np.zeros(1 + MESSAGE_BYTES, np.float32)  # [failed, bytes...]: 0..255 are exact in float32
    mine[0] = 1.0 if error is not None else 0.0
    mine[1:1 + len(encoded)] = np.frombuffer(encoded, np.uint8)
    everyone = gather(comm, mine)
    failed = [rank for rank in range(comm.world.size) if everyone[rank, 0] > 0]
    if failed and error is None:
        first = everyone[failed[0], 1:].astype(np.uint8).tobytes().rstrip(b"\0")
        raise SeqcoreError(first.decode("utf-8", errors="ignore"))


def config_digest(task: str, config: Mapping[str, Any], out: str, mode: str) -> str:
    text = json.dumps({"task": task, "config": dict(config), "out": out, "mode": mode}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def agree(comm: Communicator, digest: str) -> None:
    """Every rank must run the same configuration (compared at start-up)."""
    mine = np.frombuffer(bytes.fromhex(digest), np.uint8).astype(np.float32)  # 0..255: exact in float32
    everyone = gather(comm, mine)
    differ = [rank for rank in range(comm.world.size) if not np.array_equal(everyone[rank], everyone[0])]
    if differ:
        raise SeqcoreError(f"The configuration of worker {differ[0]} differs from worker 0's; start every "
                           f"worker with the same flags (and the same --out).")


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
