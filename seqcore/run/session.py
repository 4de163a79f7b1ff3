"""The run layer: one training run of any task, written once.

A `Run` owns the output folder (lock, config.json), the metrics (in memory, metrics.jsonl,
metrics.csv, TensorBoard), the progress bar, the learning-rate schedule, checkpoints (last and
best, with everything a resume needs), signals, divergence and early stopping. A task supplies a
`Job`: its batches, its evaluation, its plots and its summary.

    with Run("char_lm", config_dict, settings, train) as run:   # folder checked, locked, config.json
        ...load the data, build the spec and the job...
        summary = run.fit(job, backend, device, spec)

A resumed run continues from `model.safetensors` exactly: weights, optimizer state, the batch
Generator at the start of the epoch in progress, the steps of that epoch already done and the
carried recurrent state, the schedule position, the best figure and the divergence reference
(dropout masks depend on (seed, epoch, step) alone, seqcore.train.loop.step_masks, and need no state).
On the CPU its per-step losses equal an uninterrupted run's.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Protocol

import numpy as np

from seqcore.backend import Backend, Model
from seqcore.errors import SeqcoreError
from seqcore.model.params import init_params
from seqcore.model.spec import Loss, ModelSpec
from seqcore.parallel import distributed
from seqcore.parallel.data_parallel import DistributedBackend
from seqcore.parallel.distributed import World
from seqcore.run.checkpoint import BEST, LAST, Checkpoint, load_checkpoint, save_checkpoint
from seqcore.run.config_file import now, read_run_config, write_run_config
from seqcore.run.folder import Mode, OutputFolder, describe
from seqcore.run.log import MemoryLog, MetricsLog, read_metrics
from seqcore.run.machine import machine_info
from seqcore.run.position import Position, checked_position, damaged_position
from seqcore.run.progress import Progress, SilentProgress
from seqcore.run.resources import check_memory, checkpoint_bytes
from seqcore.train.loop import Batch, Carry, EpochStats, NonFiniteLoss, train_epoch
from seqcore.train.schedules import LearningRate
from seqcore.train.spec import TrainSpec

BATCH_STREAM = 1  # the batch Generator is seeded with (seed, 1), the weights with seed alone
PLOT_INTERVAL_S = 10.0  # the figures are redrawn at an evaluation at most this often


class Job(Protocol):
    """What a task hands the run layer."""

    loss: Loss
    monitor: str  # the evaluation figure behind best.safetensors, --patience and the plateau schedule
    maximize: bool  # True when a higher `monitor` is better (accuracy)
    info: dict[str, Any]  # backend, device, data description: stored in records and checkpoints
    vocab: Optional[dict[str, Any]]  # Vocab.to_dict() for token tasks, saved in checkpoints
    fingerprint: dict[str, Any]  # SHA-256 of the data files, saved in checkpoints

    def num_batches(self) -> int:
        """Batches per epoch (a progress total)."""

    def batches(self, epoch: int, rng: np.random.Generator) -> Iterable[Batch]:
        """One epoch of time-major batches; all randomness from `rng`."""

    def evaluate(self, run: "Run", backend: Backend, model: Model, epoch: int) -> dict[str, Any]:
        """Figures for the epoch record (they must include `monitor`), after the epoch's training."""

    def describe(self, record: Mapping[str, Any]) -> str:
        """The line printed for an evaluated epoch."""

    def plot(self, run: "Run") -> None:
        """Draw the task's figures into run.folder from run.log (called at every evaluation)."""

    def summary(self, run: "Run", backend: Backend, model: Model) -> dict[str, Any]:
        """The figures of the finished run (written as the last metrics line)."""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    out: Path
    mode: Mode = Mode.NEW
    eval_every: int = 1  # epochs between evaluations (and the last epoch)
    checkpoint_every: int = 1  # epochs between checkpoints (and the last epoch)
    patience: int = 0  # stop after this many evaluations without a new best; 0: never
    divergence: float = 10.0  # a loss above this multiple of the reference stops the run; 0: off
    log_every: int = 0  # steps per 'step' metrics line (their mean loss); 0: none
    span: int = 0  # steps per Backend.train_span (one read-back); 0: log_every, else the whole epoch
    progress: bool = True
    tensorboard: bool = False
    resume_command: str = ""  # printed when the run stops early


class RunInterrupted(SeqcoreError):
    """SIGINT or SIGTERM stopped the run after a whole span of steps and a checkpoint."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class _Stop(Exception):
    """Raised from the step callback when a signal asked the run to stop."""


class Run:
    def __init__(self, task: str, config: Mapping[str, Any], settings: RunSettings, train: TrainSpec):
        self.task, self.config, self.settings, self.train = task, dict(config), settings, train
        self.spec: Optional[ModelSpec] = None  # known once the task has read its data (fit)
        self.folder = Path(settings.out)
        self._out = OutputFolder(self.folder, settings.mode)
        self.log: Optional[MetricsLog] = None
        self.resumed: Optional[Checkpoint] = None
        self._stop_signal: Optional[int] = None
        self._old_handlers: dict = {}
        self._generators: dict[int, np.random.Generator] = {}
        self._carry: Optional[Carry] = None  # the state after the last step, for a stop inside an epoch
        self._saved_epoch: Optional[int] = None
        self._saved_config: dict[str, Any] = {}
        self._resume_position = Position()  # where the resumed checkpoint stopped (checked once)
        self._later_records: list[dict[str, Any]] = []  # metrics lines written after that checkpoint
        self._kept_records: list[dict[str, Any]] = []  # metrics lines up to it
        self._drawn_at = -math.inf
        self.world = World()  # this worker's rank among the data-parallel workers (seqcore.parallel.distributed)
        self._comm: Optional[distributed.Communicator] = None

    # -- the folder ---------------------------------------------------------------------------

    def __enter__(self) -> "Run":
        self._join_workers()
        try:
            if self.world.is_writer:  # rank 0 alone locks and writes the folder; the others read it
                self._enter_folder()
            elif self.settings.mode is Mode.RESUME:
                self._open_for_resume()
        except BaseException as error:
            if self._comm is not None:  # tell the others, so that no rank waits for this one
                try:
                    distributed.settle(self._comm, error)
                except SeqcoreError:
                    pass  # the others are gone already: this error is still the one to tell
                self._comm.close()
            raise
        if self._comm is not None:
            try:  # every rank ends with the sentence of a rank that refused (rank 0: a folder in use)
                distributed.settle(self._comm, None)
            except SeqcoreError:
                self.__exit__(SeqcoreError, None, None)  # releases the folder (a new one is removed)
                raise
        self._install_signal_handlers()
        return self

    def _join_workers(self) -> None:
        """Under torchrun or tasks.launch: check that the batch splits, join the other workers
        (a bounded wait) and compare configurations, before any file is touched."""
        size = distributed.environment_size()
        if size <= 1:
            return
        distributed.check_rows(self.train.batch_size, size)
        self._comm = distributed.join(self.config.get("backend", ""), self.config.get("device", "auto"))
        self.world = self._comm.world
        try:
            distributed.agree(self._comm, distributed.config_digest(self.task, self.config, str(self.folder),
                                                                    self.settings.mode.value))
        except BaseException:
            self._comm.close()
            raise

    def _enter_folder(self) -> None:
        self._out.__enter__()
        try:
            if self.settings.mode is Mode.RESUME:
                self._open_for_resume()
            else:
                write_run_config(self.folder, self.task, self.config, created=now(), resumed=[])
        except OSError as error:
            self._out.__exit__(None, None, None)
            raise SeqcoreError(f"Cannot write to {self.folder} ({describe(error)}).") from None
        except BaseException:
            self._out.__exit__(None, None, None)
            raise

    def __exit__(self, kind, error, trace) -> None:
        self._restore_signal_handlers()
        if self.log is not None and self.log.tensorboard is not None:
            self.log.tensorboard.close()
        if self._comm is not None:
            self._comm.close()
        if self.world.is_writer:
            if kind is not None and self.log is None and self.settings.mode is Mode.NEW:
                self._out.discard()  # refused before training: leave no half-made run behind
            self._out.__exit__(kind, error, trace)
        if kind is None and self._stop_signal is not None:
            # The signal came after the last step (summary, figures): the run is complete, but the
            # caller must still stop (sine --cell all would otherwise train the next cell).
            name = signal.Signals(self._stop_signal).name
            raise RunInterrupted(f"Stopped by {name} after the run in {self.folder} had finished; "
                                 f"its results are complete.", self._stop_signal)

    def _open_for_resume(self) -> None:
        saved = read_run_config(self.folder)
        if saved["task"] != self.task:
            raise SeqcoreError(f"{self.folder} holds a {saved['task']} run, not a {self.task} run; "
                               f"resume it with python -m tasks.{saved['task']}.")
        self._saved_config = saved
        checkpoint = self.folder / LAST
        self.resumed = load_checkpoint(checkpoint) if checkpoint.is_file() else None
        if self.resumed is not None and self.resumed.position:  # refused before a framework loads
            self._resume_position = checked_position(checkpoint, self.resumed.position)
        path = self.folder / "metrics.jsonl"
        records = read_metrics(path, warn=False) if path.is_file() else []
        kept = self._resume_position.num_records
        self._kept_records, self._later_records = records[:kept], records[kept:]

    def _open_log(self) -> None:
        """The metrics log; a resume keeps the lines up to its checkpoint (the ones after it describe
        steps that run again), and the interruption events, and records itself in config.json."""
        path, records = self.folder / "metrics.jsonl", []
        if self.settings.mode is Mode.RESUME:
            records = self._kept_records + [r for r in self._later_records
                                            if r.get("kind") in ("interrupted", "stopped")]
        if not self.world.is_writer:
            self.log = MemoryLog(records)
            return
        if self.settings.mode is Mode.RESUME:
            saved = self._saved_config
            write_run_config(self.folder, self.task, self.config, created=saved.get("created", ""),
                             resumed=[*saved.get("resumed", []), now()])
        self.log = MetricsLog(path, records, tensorboard=self._tensorboard())

    def _tensorboard(self):
        if not self.settings.tensorboard:
            return None
        from tensorboardX import SummaryWriter  # the optional extra; checked before the run starts

        return SummaryWriter(str(self.folder / "tensorboard"))

    # -- signals -------------------------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers.clear()

    def _on_signal(self, signum: int, frame) -> None:
        if self._stop_signal is not None:  # the second one: out at once, the last checkpoint stays
            raise KeyboardInterrupt
        self._stop_signal = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this span of steps and writing a checkpoint "
              f"(again to stop at once)", file=sys.stderr)

    # -- randomness ----------------------------------------------------------------------------

    def generator(self, stream: int) -> np.random.Generator:
        """The Generator seeded (seed, stream), restored on resume (e.g. text sampling)."""
        if stream not in self._generators:
            rng = np.random.default_rng([self.train.seed, stream])
            saved = self.resumed.position.get("generators", {}).get(str(stream)) if self.resumed else None
            if saved is not None:
                rng.bit_generator.state = saved
            self._generators[stream] = rng
        return self._generators[stream]

    # -- training ------------------------------------------------------------------------------

    def fit(self, job: Job, backend: Backend, device: str, spec: ModelSpec) -> dict[str, Any]:
        """Train `spec` to `train.num_epochs` (or an early stop) and return the task's summary."""
        self.spec = spec
        if self.resumed is not None and self.resumed.model_spec != spec:
            raise SeqcoreError(f"{self.folder / LAST} holds another model than this run's configuration "
                               f"describes; the folder was changed by hand.")
        if self.resumed is not None and self.resumed.data and self.resumed.data != job.fingerprint:
            raise SeqcoreError(f"The data of the run in {self.folder} changed since it was trained "
                               f"({_changed(self.resumed.data, job.fingerprint)}); a resume needs the same data.")
        check_memory(self.spec, self.train)
        try:
            if self.world.is_writer:
                self._out.check_space(checkpoint_bytes(self.spec, self.train))
            if self._comm is not None:  # this worker's rows of every batch, global figures out
                backend = DistributedBackend(backend, self._comm, self.spec)
                backend.stop_requested = lambda: self._stop_signal
            return self._fit(job, backend, device)
        except OSError as error:
            raise SeqcoreError(f"Cannot write to {self.folder} ({describe(error)}); "
                               f"{self._kept()}") from None

    def _fit(self, job: Job, backend: Backend, device: str) -> dict[str, Any]:
        resumed, train, settings, position = self.resumed, self.train, self.settings, self._resume_position
        model = backend.build_model(self.spec, resumed.params if resumed else
                                    init_params(self.spec, train.init, train.seed), device)
        trainer = backend.make_trainer(model, train.optimizer, train.lr)
        if resumed:
            backend.load_trainer_state(model, trainer, resumed.optimizer)
        self._job, self._backend, self._model, self._trainer = job, backend, model, trainer
        self.position = position
        per_epoch = job.num_batches()
        if position.steps_done > per_epoch:  # a damaged position, not an epoch with nothing left to train
            raise damaged_position(self.folder / LAST, f"steps_done is {position.steps_done}, but an "
                                    f"epoch has {per_epoch} steps")
        lr = LearningRate(train, per_epoch * train.num_epochs, position.updates, position.plateau_scale)
        rng = np.random.default_rng([train.seed, BATCH_STREAM])
        if position.epoch_rng is not None:
            rng.bit_generator.state = position.epoch_rng
        # A run killed after its last checkpoint but before its summary line has trained every epoch
        # yet is unfinished: it is finished below (the loop runs no epoch, the summary is written).
        # Only a run whose summary follows that checkpoint is refused.
        if position.epochs_done > train.num_epochs or (position.epochs_done == train.num_epochs
                                                        and self._summary_written()):
            raise SeqcoreError(f"The run in {self.folder} has already trained {position.epochs_done} epochs; "
                               f"give --epochs above that to continue it.")
        self._open_log()
        if not self.log.records:
            self.log.write({"kind": "run", "task": self.task, "model": self.spec.to_dict(),
                            "train": self.train.to_dict(), **job.info, "world_size": self.world.size,
                            "machine": machine_info(backend.versions())})
        elif _world_size(self.log.records) != self.world.size:  # resumed on another number of workers
            self.log.write({"kind": "world", "world_size": self.world.size, "epoch": position.epochs_done,
                            "step": position.steps_done})
        done_before = position.epochs_done * per_epoch + position.steps_done
        bar = SilentProgress() if not self.world.is_writer else Progress(
            per_epoch * train.num_epochs, f"{job.info.get('backend', '')} {self.spec.cell.value} "
            f"{self.spec.impl.value}", enabled=settings.progress, initial=done_before)
        self._bar = bar
        started = time.perf_counter() - position.wall_s
        self._started = started
        # Likewise a run killed after the checkpoint of its early stop, before its early_stop and
        # summary lines, is finished rather than trained an epoch further (its patience had run out;
        # a larger --patience still continues it).
        stopped_early = bool(resumed and settings.patience and not position.steps_done
                             and position.bad_evaluations >= settings.patience and not self._summary_written())
        if stopped_early:
            self._early_stop(position.epochs_done)
        last_epoch = position.epochs_done if stopped_early else train.num_epochs
        try:
            for epoch in range(position.epochs_done + 1, last_epoch + 1):
                position.epoch_rng = copy.deepcopy(rng.bit_generator.state)
                skip = position.steps_done
                batches: Iterable[Batch] = itertools.islice(job.batches(epoch, rng), skip, None)
                stats = EpochStats(**position.stats) if skip and position.stats else None
                carry = None
                if skip and resumed is not None and resumed.recurrent_state:
                    carry = Carry(backend.state_from_numpy(model, resumed.recurrent_state),
                                  resumed.recurrent_state[0].shape[1])
                backend.set_lr(trainer, lr.value(epoch))
                on_step, on_span = self._step_callbacks(epoch, per_epoch, lr, job)
                try:
                    stats = train_epoch(backend, model, trainer, batches, loss=job.loss, clip=train.clip,
                                        carry_state=train.carry_state, epoch=epoch,
                                        warmup_steps=1 if epoch == 1 and not skip else 0,
                                        span=settings.span or settings.log_every,
                                        rates=lambda count, epoch=epoch: lr.upcoming(epoch, count),
                                        on_step=on_step, on_span=on_span, stats=stats, carry=carry,
                                        spec=self.spec, seed=train.seed)
                except _Stop:
                    self._stop_inside_epoch(epoch, lr)
                except NonFiniteLoss as error:
                    self.log.write({"kind": "stopped", "reason": str(error), "epoch": epoch})
                    self._draw(job, force=True)
                    raise error.explain(self.folder / LAST, self._last_saved()) from None
                position.steps_done, position.stats = 0, None
                if self._end_epoch(epoch, stats, lr, per_epoch, rng):
                    break
        finally:
            bar.close()
        summary = {"kind": "summary", **job.summary(self, backend, model),
                   "wall_s": time.perf_counter() - started, "checkpoint": str(self.folder / LAST),
                   "best_checkpoint": str(self.folder / BEST) if (self.folder / BEST).is_file() else None,
                   **job.info}
        self.log.write(summary)
        self._draw(job, force=True)
        return summary

    def _summary_written(self) -> bool:
        """True when metrics.jsonl held a summary line after the resumed checkpoint's lines."""
        return any(r.get("kind") == "summary" for r in self._later_records)

    def _step_callbacks(self, epoch: int, per_epoch: int, lr: LearningRate, job: Job):
        """on_step and on_span for train_epoch: the figures of each step, read after its span; a
        stop (a signal) only at a span's end, where the weights and the carried state are."""
        position, settings, backend = self.position, self.settings, self._backend

        def on_step(step: int, value: float, stats: EpochStats) -> None:
            position.steps_done, position.stats = step, dataclasses.asdict(stats)
            lr.updates += 1
            if position.first_loss is None:
                position.first_loss = value
            reference = position.reference_loss if position.reference_loss is not None else position.first_loss
            if settings.divergence and reference > 0 and value > settings.divergence * reference:
                raise NonFiniteLoss(value, epoch, step, settings.divergence * reference)
            if settings.log_every:
                position.window.append(value)
                if len(position.window) == settings.log_every or step == per_epoch:
                    self.log.write({"kind": "step", "epoch": epoch, "step": step,
                                    "global_step": lr.updates, "x": epoch - 1 + step / per_epoch,
                                    "loss": float(np.mean(position.window)), "lr": lr.value(epoch)})
                    position.window.clear()
            self._bar.update(1, {"loss": value, "tok/s": stats.tokens_per_second})

        def on_span(step: int, stats: EpochStats, carry: Optional[Carry]) -> None:
            self._carry = carry
            if self._comm is not None and backend.stop_agreed:  # asked on some rank: all stop after this span
                self._stop_signal = self._stop_signal or backend.stop_agreed
            if self._stop_signal is not None and (self._comm is None or backend.stop_agreed):
                raise _Stop

        return on_step, on_span

    def _end_epoch(self, epoch: int, stats: EpochStats, lr: LearningRate, per_epoch: int,
                   rng: np.random.Generator) -> bool:
        """Record, evaluate, checkpoint; True when the run should stop early."""
        job, position, settings = self._job, self.position, self.settings
        if position.reference_loss is None:
            position.reference_loss = stats.mean_loss
        last = epoch == self.train.num_epochs
        record: dict[str, Any] = {"kind": "epoch", "epoch": epoch, "train_loss": stats.mean_loss,
                                  "train_ppl": stats.perplexity, "tokens_per_s": stats.tokens_per_second,
                                  "max_grad_norm": stats.max_grad_norm, "lr": lr.value(epoch),
                                  "elapsed_s": time.perf_counter() - self._started}
        if job.loss is not Loss.CROSS_ENTROPY:
            del record["train_ppl"]
        evaluated = last or epoch % settings.eval_every == 0
        improved = False
        if evaluated:
            record.update(job.evaluate(self, self._backend, self._model, epoch))
            value = record[job.monitor]
            improved = value is not None and math.isfinite(value) and (
                position.best is None or (value > position.best if job.maximize else value < position.best))
            if improved:
                position.best, position.best_epoch, position.bad_evaluations = value, epoch, 0
            else:
                position.bad_evaluations += 1
            lr.evaluated(improved)
            self._bar.log(job.describe(record))
        self.log.write(record)
        position.epochs_done, position.updates, position.plateau_scale = epoch, lr.updates, lr.plateau_scale
        position.epoch_rng = copy.deepcopy(rng.bit_generator.state)  # the next epoch starts here
        stop = bool(evaluated and settings.patience and position.bad_evaluations >= settings.patience)
        if last or stop or epoch % settings.checkpoint_every == 0 or improved:
            self._save(epoch, record, best=improved)
        if evaluated:
            self._draw(job)
        if stop:
            self._early_stop(epoch)
        return stop

    def _early_stop(self, epoch: int) -> None:
        job, position, settings = self._job, self.position, self.settings
        self.log.write({"kind": "early_stop", "epoch": epoch, "best_epoch": position.best_epoch,
                        job.monitor: position.best, "patience": settings.patience})
        self._bar.log(f"no better {job.monitor} for {settings.patience} evaluations: stopping at epoch "
                      f"{epoch} (best {position.best:.4g} at epoch {position.best_epoch})")

    def _stop_inside_epoch(self, epoch: int, lr: LearningRate) -> None:
        position = self.position
        position.updates = lr.updates
        step = position.steps_done  # the resume skips these batches of `epoch` and continues
        self._save(epoch - 1, {}, carry=self._carry)
        signum = self._stop_signal or signal.SIGINT
        self.log.write({"kind": "interrupted", "signal": signal.Signals(signum).name, "epoch": epoch,
                        "step": step})
        self._draw(self._job, force=True)
        command = self.settings.resume_command
        raise RunInterrupted(f"Stopped by {signal.Signals(signum).name} at epoch {epoch}, step {step}, "
                             f"with a checkpoint in {self.folder}; continue with: {command}", signum)

    def _save(self, epoch: int, record: Mapping[str, Any], best: bool = False,
              carry: Optional[Carry] = None) -> None:
        backend, model, position = self._backend, self._model, self.position
        params = backend.export_params(model)
        bad = [name for name, value in params.items() if not np.all(np.isfinite(value))]
        if bad:  # a good checkpoint has finite weights; the last good one stays in place
            raise SeqcoreError(f"The weights became non-finite ({bad[0]}) at epoch {epoch}; training stopped. "
                               f"{self._kept()} Try a lower --lr or clipping (--clip).")
        position.generators = {str(k): g.bit_generator.state for k, g in self._generators.items()}
        position.num_records = len(self.log.records)
        position.wall_s = time.perf_counter() - self._started
        numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "kind"}
        checkpoint = Checkpoint(
            self.spec, params, self.train, self._job.vocab,
            {"epoch": epoch, **self._job.info, **numbers}, backend.export_trainer_state(model, self._trainer),
            tuple(backend.state_to_numpy(carry.state)) if carry is not None else (),
            position.to_json(), self._job.fingerprint)
        # Best before last: a kill between the two writes then leaves the previous last checkpoint,
        # whose resume trains this epoch again and rewrites the same best; in the other order the
        # resume's position would claim a best that best.safetensors did not hold.
        if best and self.world.is_writer:
            save_checkpoint(self.folder / BEST, checkpoint)
        if self.world.is_writer:
            save_checkpoint(self.folder / LAST, checkpoint)
        self._saved_epoch = epoch

    def _draw(self, job: Job, force: bool = False) -> None:
        """metrics.csv at every evaluation; the figures too, but at most every PLOT_INTERVAL_S
        seconds unless forced (at the end and at a stop), since drawing can cost more than a
        small model's epoch (hello: 85% of its time when drawn every epoch). Rank 0 alone draws."""
        if not self.world.is_writer:
            return
        self.log.write_csv(self.folder / "metrics.csv")
        clock = time.perf_counter()
        if force or clock - self._drawn_at >= PLOT_INTERVAL_S:
            job.plot(self)
            self._drawn_at = clock

    def _last_saved(self) -> Optional[int]:
        saved = self._saved_epoch
        if saved is None and self.resumed is not None:
            saved = self.resumed.progress.get("epoch")
        return saved

    def _kept(self) -> str:
        saved = self._last_saved()
        if saved is None:
            return "no checkpoint had been written yet."
        return f"the last good checkpoint (epoch {saved}) is kept at {self.folder / LAST}."


def _world_size(records: list[dict[str, Any]]) -> int:
    """The number of workers that trained last, from the run line or a later `world` line."""
    sizes = [r["world_size"] for r in records if r.get("kind") in ("run", "world") and "world_size" in r]
    return sizes[-1] if sizes else 1


def _changed(saved: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} was {saved.get(key)}, is {now.get(key)}"
                     for key in sorted(set(saved) | set(now)) if saved.get(key) != now.get(key))


