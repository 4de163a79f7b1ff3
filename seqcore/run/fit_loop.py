"""The training of one run, in its fixed order: build the model (or restore it), open the log,
then per epoch train (from where a stop left it), record, evaluate, checkpoint (best before
last), draw and stop early; then the summary. `Run.fit` makes one `FitLoop` and runs it.

A stop by a signal is taken only at a span's end (steps.py) and writes a checkpoint of the
epoch in progress, with the carried state; a loss past the divergence limit stops with the last
good checkpoint kept.
"""
from __future__ import annotations

import copy
import itertools
import signal
import time
from typing import Any, Mapping, Optional

import numpy as np

from seqcore.backend import Backend
from seqcore.errors import SeqcoreError
from seqcore.model.params import init_params
from seqcore.run.checkpoint import LAST, Checkpoint
from seqcore.run.config_file import now, write_run_config
from seqcore.run.contract import Job
from seqcore.run.epoch_end import EpochPolicy, epoch_record
from seqcore.run.folder import Mode
from seqcore.run.outputs import Figures, open_log, resumed_records, run_line, summary_line, world_size_of
from seqcore.run.position import damaged_position
from seqcore.run.progress import Progress, SilentProgress
from seqcore.run.saving import check_finite, kept_sentence, provenance, write_checkpoints
from seqcore.run.signals import RunInterrupted, StopRequested, name
from seqcore.run.steps import StepWatch
from seqcore.train.loop import Carry, EpochStats, NonFiniteLoss, train_epoch
from seqcore.train.schedules import LearningRate

BATCH_STREAM = 1  # the batch Generator is seeded with (seed, 1), the weights with seed alone


class FitLoop:
    def __init__(self, run, job: Job, backend: Backend):
        self.run, self.job, self.backend = run, job, backend
        self.saved_epoch: Optional[int] = None

    def __call__(self) -> dict[str, Any]:
        run, job, backend, position = self.run, self.job, self.backend, self.run.position
        train, settings, resumed = run.train, run.settings, run.resumed
        self.model = backend.build_model(run.spec, resumed.params if resumed else
                                         init_params(run.spec, train.init, train.seed), run.device)
        self.trainer = backend.make_trainer(self.model, train.optimizer, train.lr)
        if resumed:
            backend.load_trainer_state(self.model, self.trainer, resumed.optimizer)
        per_epoch = job.num_batches()
        if position.steps_done > per_epoch:  # a damaged position, not an epoch with nothing left to train
            raise damaged_position(run.folder / LAST, f"steps_done is {position.steps_done}, but an "
                                   f"epoch has {per_epoch} steps")
        self.lr = lr = LearningRate(train, per_epoch * train.num_epochs, position.updates, position.plateau_scale)
        self.rng = np.random.default_rng([train.seed, BATCH_STREAM])
        if position.epoch_rng is not None:
            self.rng.bit_generator.state = position.epoch_rng
        summary_written = run._state is not None and run._state.summary_written()
        # A run killed after its last checkpoint but before its summary line has trained every epoch
        # yet is unfinished: it is finished below (the loop runs no epoch, the summary is written).
        if position.epochs_done > train.num_epochs or (position.epochs_done == train.num_epochs and summary_written):
            raise SeqcoreError(f"The run in {run.folder} has already trained {position.epochs_done} epochs; "
                               f"give --epochs above that to continue it.")
        self._open_log()
        self.policy = EpochPolicy(train.num_epochs, settings.eval_every, settings.checkpoint_every,
                                  settings.patience, job.maximize)
        self.figures = Figures(run.world.is_writer, run._out.check_intact)
        self.bar = SilentProgress() if not run.world.is_writer else Progress(
            per_epoch * train.num_epochs, f"{run.backend_name} {run.spec.cell.value} {run.spec.impl.value}",
            enabled=settings.progress, initial=position.epochs_done * per_epoch + position.steps_done)
        self.started = time.perf_counter() - position.wall_s
        self.steps = StepWatch(position, settings, run.log, self.bar, lr, per_epoch, self._stop_now)
        # Likewise a run killed after the checkpoint of its early stop, before its early_stop and
        # summary lines, is finished rather than trained an epoch further (its patience had run out;
        # a larger --patience still continues it).
        stopped_early = bool(resumed and settings.patience and not position.steps_done
                             and position.bad_evaluations >= settings.patience and not summary_written)
        if stopped_early:
            self._early_stop(position.epochs_done)
        last_epoch = position.epochs_done if stopped_early else train.num_epochs
        try:
            for epoch in range(position.epochs_done + 1, last_epoch + 1):
                stats = self._train_epoch(epoch)
                position.steps_done, position.stats = 0, None
                if self._end_epoch(epoch, stats):
                    break
        finally:
            self.bar.close()
        summary = summary_line(job.summary(run, backend, self.model), run.folder, time.perf_counter() - self.started,
                               run.backend_name, run.device, job.data)
        run.log.write(summary)
        self.figures.draw(job, run, force=True)
        return summary

    def _open_log(self) -> None:
        """The metrics log (a resume keeps its lines up to the checkpoint); a resume records itself
        in config.json; a new run opens with its run line."""
        run, position = self.run, self.run.position
        if run.world.is_writer and run.settings.mode is Mode.RESUME:
            run._out.check_intact()
            saved = run._state.saved
            write_run_config(run.folder, run.task, run.config, created=saved.get("created", ""),
                             resumed=[*saved.get("resumed", []), now()], make_folder=False)
        run.log = open_log(run.folder, resumed_records(run._state), run.world.is_writer, run.settings.tensorboard,
                           run._out.check_intact)
        if not run.log.records:
            run.log.write(run_line(run.task, run.backend_name, run.device, run.spec, run.train, self.job.data,
                                   run.world.size, self.backend.versions()))
        elif world_size_of(run.log.records) != run.world.size:  # resumed on another number of workers
            run.log.write({"kind": "world", "world_size": run.world.size, "epoch": position.epochs_done,
                           "step": position.steps_done})

    def _train_epoch(self, epoch: int) -> EpochStats:
        """One epoch from where the position says (the steps a stopped epoch had done are skipped)."""
        run, backend, lr, position = self.run, self.backend, self.lr, self.run.position
        train, settings, resumed = run.train, run.settings, run.resumed
        position.epoch_rng = copy.deepcopy(self.rng.bit_generator.state)
        skip = position.steps_done
        batches = itertools.islice(self.job.batches(epoch, self.rng), skip, None)
        stats = EpochStats(**position.stats) if skip and position.stats else None
        carry = None
        if skip and resumed is not None and resumed.recurrent_state:
            carry = Carry(backend.state_from_numpy(self.model, resumed.recurrent_state),
                          resumed.recurrent_state[0].shape[1])
        backend.set_lr(self.trainer, lr.value(epoch))
        on_step, on_span = self.steps.callbacks(epoch)
        try:
            return train_epoch(backend, self.model, self.trainer, batches, loss=self.job.loss, clip=train.clip,
                               carry_state=train.carry_state, epoch=epoch,
                               warmup_steps=1 if epoch == 1 and not skip else 0,
                               span=settings.span or settings.log_every,
                               rates=lambda count, epoch=epoch: lr.upcoming(epoch, count),
                               on_step=on_step, on_span=on_span, stats=stats, carry=carry,
                               spec=run.spec, seed=train.seed)
        except StopRequested:
            self._stop_inside_epoch(epoch)
        except NonFiniteLoss as error:
            run.log.write({"kind": "stopped", "reason": str(error), "epoch": epoch})
            self.figures.draw(self.job, run, force=True)
            raise error.explain(run.folder / LAST, self.last_saved()) from None

    def _stop_now(self) -> bool:
        """At a span's end: whether a signal asked to stop (under data parallelism: on any rank)."""
        signals = self.run.signals
        if self.run.workers.comm is None:
            return signals.pending is not None
        agreed = self.backend.stop_agreed
        if agreed:
            signals.pending = signals.pending or agreed
        return bool(agreed)

    def _end_epoch(self, epoch: int, stats: EpochStats) -> bool:
        """Record, evaluate, checkpoint (best before last), draw, and stop early: True to stop."""
        run, job, position, policy, lr = self.run, self.job, self.run.position, self.policy, self.lr
        if position.reference_loss is None:
            position.reference_loss = stats.mean_loss
        record = epoch_record(epoch, stats, job.loss, lr.value(epoch), time.perf_counter() - self.started)
        evaluated, improved = policy.evaluates(epoch), False
        if evaluated:
            record.update(job.evaluate(run, self.backend, self.model, epoch))
            improved = policy.improves(record[job.monitor], position.best)
            if improved:
                position.best, position.best_epoch, position.bad_evaluations = record[job.monitor], epoch, 0
            else:
                position.bad_evaluations += 1
            lr.evaluated(improved)
            self.bar.log(job.describe(record))
        run.log.write(record)
        position.epochs_done, position.updates, position.plateau_scale = epoch, lr.updates, lr.plateau_scale
        position.epoch_rng = copy.deepcopy(self.rng.bit_generator.state)  # the next epoch starts here
        decision = policy.decide(epoch, evaluated, improved, position.bad_evaluations)
        if decision.save:
            self._save(epoch, record, best=decision.improved)
        if decision.evaluated:
            self.figures.draw(job, run)
        if decision.stop:
            self._early_stop(epoch)
        return decision.stop

    def _early_stop(self, epoch: int) -> None:
        run, job, position, patience = self.run, self.job, self.run.position, self.run.settings.patience
        run.log.write({"kind": "early_stop", "epoch": epoch, "best_epoch": position.best_epoch,
                       job.monitor: position.best, "patience": patience})
        self.bar.log(f"no better {job.monitor} for {patience} evaluations: stopping at epoch "
                     f"{epoch} (best {position.best:.4g} at epoch {position.best_epoch})")

    def _stop_inside_epoch(self, epoch: int) -> None:
        run = self.run
        run.position.updates = self.lr.updates
        step = run.position.steps_done  # the resume skips these batches of `epoch` and continues
        self._save(epoch - 1, {}, carry=self.steps.carry)
        signum = run.signals.pending or signal.SIGINT
        run.log.write({"kind": "interrupted", "signal": name(signum), "epoch": epoch, "step": step})
        self.figures.draw(self.job, run, force=True)
        raise RunInterrupted(f"Stopped by {name(signum)} at epoch {epoch}, step {step}, with a checkpoint in "
                             f"{run.folder}; continue with: {run.settings.resume_command}", signum)

    def _save(self, epoch: int, record: Mapping[str, Any], best: bool = False, carry: Optional[Carry] = None) -> None:
        run, backend, position, data = self.run, self.backend, self.run.position, self.job.data
        params = backend.export_params(self.model)
        check_finite(params, epoch, self.kept())
        position.generators = {str(k): g.bit_generator.state for k, g in run._generators.items()}
        position.num_records = len(run.log.records)
        position.wall_s = time.perf_counter() - self.started
        checkpoint = Checkpoint(
            run.spec, params, run.train, data.spec, self.job.vocab,
            provenance(run.task, run.backend_name, run.device, run.config, epoch, record, data.facts()),
            backend.export_trainer_state(self.model, self.trainer),
            tuple(backend.state_to_numpy(carry.state)) if carry is not None else (),
            position.to_json(), data.fingerprint)
        if run.world.is_writer:
            write_checkpoints(run._out, checkpoint, best)
        self.saved_epoch = epoch

    def last_saved(self) -> Optional[int]:
        """The epoch of the last checkpoint written (by this process, else the resumed one)."""
        saved = self.saved_epoch
        if saved is None and self.run.resumed is not None:
            saved = self.run.resumed.provenance.get("epoch")
        return saved

    def kept(self) -> str:
        return kept_sentence(self.run._out, self.last_saved())
