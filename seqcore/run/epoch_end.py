"""The end-of-epoch policy: which epochs are evaluated and checkpointed, what counts as a new best,
when patience runs out. Decisions only; the run carries them out in its fixed order (record,
best checkpoint before last, figures, then the early stop).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from seqcore.model.spec import Loss
from seqcore.train.loop import EpochStats


@dataclasses.dataclass(frozen=True)
class Decision:
    evaluated: bool  # the job's evaluation ran (the record holds the monitored figure)
    improved: bool  # a new best: best.safetensors is written
    stop: bool  # patience ran out
    save: bool  # model.safetensors is written


@dataclasses.dataclass(frozen=True)
class EpochPolicy:
    num_epochs: int
    eval_every: int
    checkpoint_every: int
    patience: int  # 0: never stop early
    maximize: bool  # a higher monitored figure is better

    def evaluates(self, epoch: int) -> bool:
        return epoch == self.num_epochs or epoch % self.eval_every == 0

    def improves(self, value: Optional[float], best: Optional[float]) -> bool:
        """A finite figure beyond the best so far (the first finite one always is)."""
        return value is not None and math.isfinite(value) and (
            best is None or (value > best if self.maximize else value < best))

    def decide(self, epoch: int, evaluated: bool, improved: bool, bad_evaluations: int) -> Decision:
        stop = bool(evaluated and self.patience and bad_evaluations >= self.patience)
        save = epoch == self.num_epochs or stop or epoch % self.checkpoint_every == 0 or improved
        return Decision(evaluated, improved, stop, save)


def epoch_record(epoch: int, stats: EpochStats, loss: Loss, lr: float, elapsed_s: float) -> dict[str, Any]:
    """The 'epoch' metrics line before its evaluation figures (perplexity for cross-entropy only)."""
    record: dict[str, Any] = {"kind": "epoch", "epoch": epoch, "train_loss": stats.mean_loss,
                              "train_ppl": stats.perplexity, "tokens_per_s": stats.tokens_per_second,
                              "max_grad_norm": stats.max_grad_norm, "lr": lr, "elapsed_s": elapsed_s}
    if loss is not Loss.CROSS_ENTROPY:
        del record["train_ppl"]
    return record
