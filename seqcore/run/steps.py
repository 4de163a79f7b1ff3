"""What the run does at each step and at each span's end, as train_epoch's on_step and on_span.

Each step: its loss against the divergence limit (a multiple of the first epoch's mean loss, of
the first step's during the first epoch), a 'step' line every `log_every` steps (their mean),
the progress bar. Each span's end: the carried state is kept (a stop writes it), and a stop that
a signal asked for is taken, only there, where the weights and the state are whole.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

from seqcore.run.contract import RunSettings
from seqcore.run.log import MetricsLog
from seqcore.run.position import Position
from seqcore.run.signals import StopRequested
from seqcore.train.loop import Carry, EpochStats, NonFiniteLoss
from seqcore.train.schedules import LearningRate


class StepWatch:
    def __init__(self, position: Position, settings: RunSettings, log: MetricsLog, bar, lr: LearningRate,
                 per_epoch: int, stop_now: Callable[[], bool]):
        self.position, self.settings, self.log, self.bar = position, settings, log, bar
        self.lr, self.per_epoch, self.stop_now = lr, per_epoch, stop_now
        self.carry: Optional[Carry] = None  # the state after the last span, for a stop inside an epoch

    def on_step(self, epoch: int, step: int, value: float, stats: EpochStats) -> None:
        position, settings, lr = self.position, self.settings, self.lr
        position.steps_done, position.stats = step, dataclasses.asdict(stats)
        lr.updates += 1
        if position.first_loss is None:
            position.first_loss = value
        reference = position.reference_loss if position.reference_loss is not None else position.first_loss
        if settings.divergence and reference > 0 and value > settings.divergence * reference:
            raise NonFiniteLoss(value, epoch, step, settings.divergence * reference)
        if settings.log_every:
            position.window.append(value)
            if len(position.window) == settings.log_every or step == self.per_epoch:
                self.log.write({"kind": "step", "epoch": epoch, "step": step, "global_step": lr.updates,
                                "x": epoch - 1 + step / self.per_epoch, "loss": float(np.mean(position.window)),
                                "lr": lr.value(epoch)})
                position.window.clear()
        self.bar.update(1, {"loss": value, "tok/s": stats.tokens_per_second})

    def on_span(self, step: int, stats: EpochStats, carry: Optional[Carry]) -> None:
        self.carry = carry
        if self.stop_now():
            raise StopRequested

    def callbacks(self, epoch: int):
        """(on_step, on_span) for train_epoch in `epoch`."""
        return (lambda step, value, stats: self.on_step(epoch, step, value, stats)), self.on_span
