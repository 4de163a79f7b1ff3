"""The frozen, validated description of how a model is trained (d2l chapter-8 defaults)."""
from __future__ import annotations

import dataclasses
import math
from enum import Enum
from typing import Any, Mapping

from seqcore.backend import Optimizer
from seqcore.checks import FLOAT32_MAX, build, parse_enum, plain, positive_float, positive_int
from seqcore.data.sampling import Sampler
from seqcore.errors import SeqcoreError
from seqcore.model.spec import Init


class Schedule(str, Enum):
    CONSTANT = "constant"
    COSINE = "cosine"  # per update, from lr down to 1% of lr at the last update
    STEP = "step"  # lr x lr_decay after every lr_decay_every epochs
    PLATEAU = "plateau"  # lr x lr_decay after each evaluation that does not beat the best so far


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """How a model is trained. Defaults are the d2l chapter-8 language-model settings."""

    batch_size: int = 32
    num_steps: int = 35
    num_epochs: int = 500
    lr: float = 1.0
    clip: float = 1.0  # global-norm clipping threshold; 0 turns clipping off
    optimizer: Optimizer = Optimizer.SGD
    sampler: Sampler = Sampler.SEQUENTIAL
    # Row i of a batch continues row i of the previous batch: the state is carried (and
    # detached) across batches. True for sequential partitioning and sin->cos windows.
    carry_state: bool = True
    init: Init = Init.UNIFORM
    seed: int = 0
    schedule: Schedule = Schedule.CONSTANT
    lr_decay: float = 0.25  # the factor of the step and plateau schedules
    lr_decay_every: int = 10  # epochs between the step schedule's decays

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizer", parse_enum(Optimizer, self.optimizer, "optimizer"))
        object.__setattr__(self, "sampler", parse_enum(Sampler, self.sampler, "sampler"))
        object.__setattr__(self, "init", parse_enum(Init, self.init, "init"))
        object.__setattr__(self, "schedule", parse_enum(Schedule, self.schedule, "schedule"))
        for field in ("batch_size", "num_steps", "num_epochs", "lr_decay_every"):
            positive_int(getattr(self, field), field.replace("_", " "))
        if not isinstance(self.carry_state, bool):
            raise SeqcoreError(f"carry state must be true or false, got {self.carry_state!r}.")
        if (not isinstance(self.lr_decay, (int, float)) or not math.isfinite(self.lr_decay)
                or not 0 < self.lr_decay <= 1):
            raise SeqcoreError(f"lr decay must be a number in (0, 1], got {self.lr_decay!r}.")
        positive_float(self.lr, "learning rate")
        if self.lr > FLOAT32_MAX:  # frameworks apply the rate as a float32 scalar
            raise SeqcoreError(f"learning rate must fit in float32 (at most 3.4e38), got {self.lr!r}.")
        if not isinstance(self.clip, (int, float)) or not math.isfinite(self.clip) or self.clip < 0:
            raise SeqcoreError(f"clip must be a non-negative number (0 turns it off), got {self.clip!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SeqcoreError(f"seed must be a non-negative integer, got {self.seed!r}.")

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainSpec":
        return build(cls, data)
