"""Where a run is, as every checkpoint records it and a resume reads it back, checked field by
field so that a damaged checkpoint is refused in one sentence instead of failing deep in training."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from seqcore.errors import SeqcoreError
from seqcore.train.loop import EpochStats


@dataclasses.dataclass
class Position:
    """Where the run is: saved in every checkpoint, read back by a resume."""

    epochs_done: int = 0
    steps_done: int = 0  # of epoch `epochs_done + 1`, at a stop inside it
    epoch_rng: Optional[dict] = None  # the batch Generator at the start of that epoch
    stats: Optional[dict] = None  # EpochStats of that epoch's steps done
    generators: dict = dataclasses.field(default_factory=dict)  # the task's other Generators
    updates: int = 0
    plateau_scale: float = 1.0
    best: Optional[float] = None
    best_epoch: int = 0
    bad_evaluations: int = 0  # evaluations since the best
    reference_loss: Optional[float] = None  # divergence reference: the first epoch's mean loss
    first_loss: Optional[float] = None  # the first step's loss: the reference during epoch 1
    window: list = dataclasses.field(default_factory=list)  # losses not yet in a 'step' line
    num_records: int = 0  # metrics lines that belong to the run up to this checkpoint
    wall_s: float = 0.0  # training time before this process

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: Generator states hold NumPy integers and big ints."""
        return json.loads(json.dumps(dataclasses.asdict(self), default=lambda v: v.item() if hasattr(v, "item") else str(v)))


def damaged_position(path: Path, detail: str) -> SeqcoreError:
    return SeqcoreError(f"{path} has a damaged resume position ({detail}); resume from an earlier copy "
                        f"or start again with --overwrite.")


def checked_position(path: Path, saved: Mapping[str, Any]) -> Position:
    """A checkpoint's resume position with every field of the type it must have, or one sentence."""
    known = {field.name for field in dataclasses.fields(Position)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise damaged_position(path, f"unknown fields {', '.join(unknown)}")
    stats = saved.get("stats")
    if isinstance(stats, dict) and "num_steps" in stats and "steps" not in stats:  # seqcore 0.1.0's word
        saved = {**saved, "stats": {("steps" if k == "num_steps" else k): v for k, v in stats.items()}}
    position = Position(**saved)

    def real(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    def rng_state(v: Any) -> bool:
        try:
            np.random.default_rng().bit_generator.state = v
        except (TypeError, ValueError, KeyError):
            return False
        return True

    def stats(v: Any) -> bool:
        if not isinstance(v, dict) or not all(real(x) for x in v.values()):
            return False
        try:
            EpochStats(**v)
        except TypeError:
            return False
        return True

    checks = {name: whole for name in ("epochs_done", "steps_done", "updates", "best_epoch", "bad_evaluations",
                                       "num_records")}
    checks.update({
        "plateau_scale": lambda v: real(v) and v > 0, "wall_s": lambda v: real(v) and v >= 0,
        "best": lambda v: v is None or real(v), "reference_loss": lambda v: v is None or real(v),
        "first_loss": lambda v: v is None or real(v), "epoch_rng": lambda v: v is None or rng_state(v),
        "stats": lambda v: v is None or stats(v),
        "generators": lambda v: isinstance(v, dict) and all(rng_state(x) for x in v.values()),
        "window": lambda v: isinstance(v, list) and all(real(x) for x in v)})
    for name, valid in checks.items():
        value = getattr(position, name)
        if not valid(value):
            shown = repr(value)
            raise damaged_position(path, f"{name} is {shown[:60] + '...' if len(shown) > 60 else shown}")
    return position
