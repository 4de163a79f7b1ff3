"""Writing a run's checkpoints: the last one at the epochs the policy names, the best one before
it, each holding everything a resume needs and the record of how the weights were trained."""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from seqcore.errors import SeqcoreError
from seqcore.run.checkpoint import BEST, LAST, Checkpoint, save_checkpoint
from seqcore.run.folder import OutputFolder


def provenance(task: str, backend: str, device: str, config: Mapping[str, Any], epoch: int,
               record: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """Who trained the weights how: the task, the backend and device (each recorded here once),
    every setting of the run (what a resume is compared against), the epoch, its figures (the
    numbers of its metrics line) and the data's counts."""
    numbers = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k not in ("kind", "epoch")}
    return {"task": task, "backend": backend, "device": device, "epoch": epoch, **numbers, **facts,
            "config": dict(config)}


def check_finite(params: Mapping[str, np.ndarray], epoch: int, kept: str) -> None:
    """A good checkpoint has finite weights; the last good one stays in place."""
    bad = [name for name, value in params.items() if not np.all(np.isfinite(value))]
    if bad:
        raise SeqcoreError(f"The weights became non-finite ({bad[0]}) at epoch {epoch}; training stopped. "
                           f"{kept} Try a lower --lr or clipping (--clip).")


def write_checkpoints(folder: OutputFolder, checkpoint: Checkpoint, best: bool) -> None:
    """Best before last: a kill between the two writes then leaves the previous last checkpoint,
    whose resume trains this epoch again and rewrites the same best; in the other order the
    resume's position would claim a best that best.safetensors did not hold. The folder must
    still be the run's (it is never made again)."""
    folder.check_intact()
    if best:
        save_checkpoint(folder.path / BEST, checkpoint, make_folder=False)
    save_checkpoint(folder.path / LAST, checkpoint, make_folder=False)


def kept_sentence(folder: OutputFolder, saved_epoch: Optional[int]) -> str:
    if saved_epoch is None:
        return "no checkpoint had been written yet."
    return f"the last good checkpoint (epoch {saved_epoch}) is kept at {folder.path / LAST}."
