"""Learning-rate schedules, decided in the core and handed to a backend with `set_lr`.

constant: lr throughout. cosine: per update, from lr down to 1% of lr at the last update.
step: lr x lr_decay after every `lr_decay_every` epochs. plateau: lr x lr_decay after each
evaluation that does not beat the best so far (the word-level LM practice of dividing the
rate by 4 when validation stops improving). The position (updates done, the plateau scale) is
saved in every checkpoint, so a resumed run continues the same schedule.
"""
from __future__ import annotations

import dataclasses
import math

from seqcore.train.spec import Schedule, TrainSpec

COSINE_FLOOR = 0.01  # the cosine schedule ends at 1% of the peak learning rate


@dataclasses.dataclass
class LearningRate:
    train: TrainSpec
    total_updates: int  # updates in the whole run, for the cosine
    updates: int = 0  # updates applied so far
    plateau_scale: float = 1.0  # product of the plateau decays so far

    def value(self, epoch: int) -> float:
        """The rate of the next update, made during `epoch` (1-based)."""
        train, lr = self.train, self.train.lr
        if train.schedule is Schedule.COSINE:
            fraction = min(self.updates / max(self.total_updates, 1), 1.0)
            return lr * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * fraction)))
        if train.schedule is Schedule.STEP:
            return lr * train.lr_decay ** ((epoch - 1) // train.lr_decay_every)
        if train.schedule is Schedule.PLATEAU:
            return lr * self.plateau_scale
        return lr

    def upcoming(self, epoch: int, count: int) -> list[float]:
        """The rates of the next `count` updates of `epoch` (a span's, decided before it runs)."""
        return [dataclasses.replace(self, updates=self.updates + k).value(epoch) for k in range(count)]

    def evaluated(self, improved: bool) -> None:
        if self.train.schedule is Schedule.PLATEAU and not improved:
            self.plateau_scale *= self.train.lr_decay

    def position(self) -> dict:
        return {"updates": self.updates, "plateau_scale": self.plateau_scale}
