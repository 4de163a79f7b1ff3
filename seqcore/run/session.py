"""The run layer: one training run of any task, written once.

A `Run` owns the output folder (lock, config.json), the metrics, the progress bar, the learning
rate schedule, checkpoints (last and best, with everything a resume needs), signals, divergence
and early stopping. A task supplies a `Job` (seqcore.run.contract): its data, batches,
evaluation, plots and summary.

    with Run("char_lm", config_dict, settings, train) as run:   # folder checked, locked, config.json
        ...load the data, build the spec and the job...
        summary = run.fit(job, backend, spec)

Each concern has its file: the folder (folder.py), the workers' agreement (workers.py), signals
(signals.py), what a resume reads and checks (resume.py), each step (steps.py), the end-of-epoch
policy (epoch_end.py), checkpoints (saving.py), the logs and figures (outputs.py), and the
training itself, in its fixed order (fit_loop.py). `Run` calls them in an order that reads top
to bottom: the workers, the folder and the resume check, the signals (__enter__); the device,
the typed resume check, memory and disk, the loop (fit); the folder released (__exit__).

A resumed run continues from `model.safetensors` exactly: weights, optimizer state, the batch
Generator at the start of the epoch in progress, the steps of that epoch already done and the
carried recurrent state, the schedule position, the best figure and the divergence reference
(dropout masks depend on (seed, epoch, step) alone, seqcore.train.loop.step_masks, and need no state).
On the CPU its per-step losses equal an uninterrupted run's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from seqcore.backend import Backend
from seqcore.errors import SeqcoreError
from seqcore.model.spec import ModelSpec
from seqcore.parallel.data_parallel import DistributedBackend
from seqcore.run.checkpoint import Checkpoint
from seqcore.run.config_file import now, write_run_config
from seqcore.run.contract import Job, RunSettings
from seqcore.run.fit_loop import BATCH_STREAM, FitLoop
from seqcore.run.folder import Mode, OutputFolder, describe
from seqcore.run.log import MetricsLog
from seqcore.run.position import Position
from seqcore.run.resources import check_memory, checkpoint_bytes
from seqcore.run.resume import ResumeState, check_request, check_specs, read_resume
from seqcore.run.saving import kept_sentence
from seqcore.run.signals import RunInterrupted, StopSignals, name
from seqcore.run.workers import Workers
from seqcore.train.spec import TrainSpec

__all__ = ["BATCH_STREAM", "Job", "Run", "RunInterrupted", "RunSettings"]


class Run:
    def __init__(self, task: str, config: Mapping[str, Any], settings: RunSettings, train: TrainSpec):
        self.task, self.config, self.settings, self.train = task, dict(config), settings, train
        self.folder = Path(settings.out)
        self.spec: Optional[ModelSpec] = None  # known once the task has read its data (fit)
        self.backend_name: str = settings.backend
        self.device: Optional[str] = None  # resolved once by the backend (resolve_device)
        self.log: Optional[MetricsLog] = None
        self.resumed: Optional[Checkpoint] = None  # the checkpoint a resume continues from
        self.position = Position()
        self.signals = StopSignals()
        self.workers = Workers(task, self.config, str(self.folder), settings.mode.value, train.batch_size,
                               settings.backend, settings.device)
        self._out = OutputFolder(self.folder, settings.mode)
        self._state: Optional[ResumeState] = None
        self._generators: dict[int, np.random.Generator] = {}
        self._loop: Optional[FitLoop] = None

    @property
    def world(self):
        return self.workers.world

    # -- entering: the workers, then the folder, then the signals --------------------------------

    def __enter__(self) -> "Run":
        self.workers.join()  # before any file is touched
        try:
            if self.world.is_writer:  # rank 0 alone locks and writes the folder; the others read it
                self._enter_folder()
            elif self.settings.mode is Mode.RESUME:
                self._read_resume()
        except BaseException as error:
            self.workers.refused(error)
            raise
        try:
            self.workers.settle()
        except SeqcoreError:
            self.__exit__(SeqcoreError, None, None)  # releases the folder (a new one is removed)
            raise
        self.signals.install()
        return self

    def _enter_folder(self) -> None:
        self._out.__enter__()
        try:
            if self.settings.mode is Mode.RESUME:
                self._read_resume()
            else:
                write_run_config(self.folder, self.task, self.config, created=now(), resumed=[])
        except OSError as error:
            self._out.__exit__(None, None, None)
            raise SeqcoreError(f"Cannot write to {self.folder} ({describe(error)}).") from None
        except BaseException:
            self._out.__exit__(None, None, None)
            raise

    def _read_resume(self) -> None:
        """The folder's run and checkpoint, and the request checked against them (resume.py)."""
        self._state = read_resume(self.folder, self.task)
        check_request(self.folder, self._state, self.task, self.config, self.settings.resumable)
        self.resumed, self.position = self._state.checkpoint, self._state.position

    def __exit__(self, kind, error, trace) -> None:
        self.signals.restore()
        if self.log is not None and self.log.tensorboard is not None:
            self.log.tensorboard.close()
        self.workers.close()
        if self.world.is_writer:
            if kind is not None and self.log is None and self.settings.mode is Mode.NEW:
                self._out.discard()  # refused before training: leave no half-made run behind
            self._out.__exit__(kind, error, trace)
        if kind is None and self.signals.pending is not None:
            # The signal came after the last step (summary, figures): the run is complete, but the
            # caller must still stop (sine --cell all would otherwise train the next cell).
            raise RunInterrupted(f"Stopped by {name(self.signals.pending)} after the run in {self.folder} had "
                                 f"finished; its results are complete.", self.signals.pending)

    # -- what the task asks for ------------------------------------------------------------------

    def resolve_device(self, backend: Backend) -> str:
        """The device the run trains on: settings.device resolved by the backend, once."""
        if self.device is None:
            self.device = backend.resolve_device(self.settings.device)
        return self.device

    def generator(self, stream: int) -> np.random.Generator:
        """The Generator seeded (seed, stream), restored on resume (e.g. text sampling)."""
        if stream not in self._generators:
            rng = np.random.default_rng([self.train.seed, stream])
            saved = self.resumed.position.get("generators", {}).get(str(stream)) if self.resumed else None
            if saved is not None:
                rng.bit_generator.state = saved
            self._generators[stream] = rng
        return self._generators[stream]

    # -- training --------------------------------------------------------------------------------

    def check_resumed(self, job: Job, spec: ModelSpec, backend: str = "") -> None:
        """On a resume, the typed record against the checkpoint's (resume.check_specs): the backend,
        the model, the training and the data. fit() checks it too; a task calls it first to refuse
        before a framework loads."""
        if self.resumed is not None:
            check_specs(self.folder, self.resumed, backend or self.settings.backend, spec, self.train, job.data)

    def fit(self, job: Job, backend: Backend, spec: ModelSpec) -> dict[str, Any]:
        """Train `spec` to `train.num_epochs` (or an early stop) and return the task's summary."""
        if self.settings.backend and backend.name != self.settings.backend:
            raise SeqcoreError(f"The run in {self.folder} is set up for {self.settings.backend}, but was handed "
                               f"the {backend.name} backend.")
        self.spec, self.backend_name = spec, backend.name  # the backend's name, from the backend itself
        self.check_resumed(job, spec, backend.name)
        self.resolve_device(backend)
        check_memory(spec, self.train)
        try:
            if self.world.is_writer:
                self._out.check_space(checkpoint_bytes(spec, self.train))
            if self.workers.comm is not None:  # this worker's rows of every batch, global figures out
                backend = DistributedBackend(backend, self.workers.comm, spec)
                backend.stop_requested = lambda: self.signals.pending
            self._loop = FitLoop(self, job, backend)
            return self._loop()
        except OSError as error:
            self._out.check_intact()  # a deleted folder is said as such, not as a failed write
            kept = self._loop.kept() if self._loop is not None else kept_sentence(self._out, None)
            raise SeqcoreError(f"Cannot write to {self.folder} ({describe(error)}); {kept}") from None
