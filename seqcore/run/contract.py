"""What a task hands the run layer: how to run (RunSettings) and what to train (a Job, with its data)."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Protocol

import numpy as np

from seqcore.backend import Backend, Device, Model
from seqcore.data.spec import DataSpec
from seqcore.model.spec import Loss
from seqcore.run.folder import Mode
from seqcore.train.loop import Batch


@dataclasses.dataclass(frozen=True)
class RunSettings:
    out: Path
    mode: Mode = Mode.NEW
    backend: str = ""  # the backend's name, known before it loads (workers join with it); "": any
    device: Device = Device.AUTO  # resolved once, by the backend, when training starts (Run.device)
    resumable: frozenset = frozenset()  # config fields a resume may change (they do not change the numbers)
    eval_every: int = 1  # epochs between evaluations (and the last epoch)
    checkpoint_every: int = 1  # epochs between checkpoints (and the last epoch)
    patience: int = 0  # stop after this many evaluations without a new best; 0: never
    divergence: float = 10.0  # a loss above this multiple of the reference stops the run; 0: off
    log_every: int = 0  # steps per 'step' metrics line (their mean loss); 0: none
    span: int = 0  # steps per Backend.train_span (one read-back); 0: log_every, else the whole epoch
    progress: bool = True
    tensorboard: bool = False
    resume_command: str = ""  # printed when the run stops early


class Data(Protocol):
    """What a data spec's load() gives (seqcore.data.spec): the spec, the data, its fingerprint."""

    spec: DataSpec
    fingerprint: dict[str, str]  # SHA-256 of each file read ({} for computed data)

    def facts(self) -> dict[str, Any]:
        """Counts and names for the run line and the summary (num_train_tokens, class_names...)."""


class Job(Protocol):
    """What a task hands the run layer."""

    loss: Loss
    monitor: str  # the evaluation figure behind best.safetensors, --patience and the plateau schedule
    maximize: bool  # True when a higher `monitor` is better (accuracy)
    data: Data  # its spec and fingerprint go into every checkpoint
    vocab: Optional[dict[str, Any]]  # Vocab.to_dict() for token tasks, saved in checkpoints

    def num_batches(self) -> int:
        """Batches per epoch (a progress total)."""

    def batches(self, epoch: int, rng: np.random.Generator) -> Iterable[Batch]:
        """One epoch of time-major batches; all randomness from `rng`."""

    def evaluate(self, run, backend: Backend, model: Model, epoch: int) -> dict[str, Any]:
        """Figures for the epoch record (they must include `monitor`), after the epoch's training."""

    def describe(self, record: Mapping[str, Any]) -> str:
        """The line printed for an evaluated epoch."""

    def plot(self, run) -> None:
        """Draw the task's figures into run.folder from run.log (called at evaluations)."""

    def summary(self, run, backend: Backend, model: Model) -> dict[str, Any]:
        """The figures of the finished run (written as the last metrics line)."""
