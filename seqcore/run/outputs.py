"""What a run writes besides its checkpoints: the metrics log (a resume keeps the lines up to its
checkpoint), the run line that opens it, TensorBoard, the figures, and the summary line.

The run line and the summary hold what seqcore.report.records reads (task, backend, device,
model, train, machine; the task's headline figures and wall_s), and the data's spec and facts.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Optional

from seqcore.model.spec import ModelSpec
from seqcore.run.checkpoint import BEST, LAST
from seqcore.run.contract import Data, Job
from seqcore.run.log import MemoryLog, MetricsLog
from seqcore.run.machine import machine_info
from seqcore.run.resume import ResumeState
from seqcore.train.spec import TrainSpec

PLOT_INTERVAL_S = 10.0  # the figures are redrawn at an evaluation at most this often
KEPT_AFTER_CHECKPOINT = ("interrupted", "stopped")  # lines after a resumed checkpoint that stay


def resumed_records(state: Optional[ResumeState]) -> list[dict[str, Any]]:
    """The lines a resume keeps: those up to its checkpoint (the ones after it describe steps that
    run again) and the interruption events."""
    if state is None:
        return []
    return state.kept_records + [r for r in state.later_records if r.get("kind") in KEPT_AFTER_CHECKPOINT]


def open_log(folder: Path, records: list[dict[str, Any]], is_writer: bool, tensorboard: bool,
             guard: Callable[[], None]) -> MetricsLog:
    """metrics.jsonl (rank 0), or the records in memory (the other ranks)."""
    if not is_writer:
        return MemoryLog(records)
    writer = None
    if tensorboard:
        from tensorboardX import SummaryWriter  # the optional extra; checked before the run starts

        writer = SummaryWriter(str(folder / "tensorboard"))
    return MetricsLog(folder / "metrics.jsonl", records, tensorboard=writer, guard=guard)


def run_line(task: str, backend: str, device: str, spec: ModelSpec, train: TrainSpec, data: Data,
             world_size: int, versions: dict[str, str]) -> dict[str, Any]:
    return {"kind": "run", "task": task, "backend": backend, "device": device, "model": spec.to_dict(),
            "train": train.to_dict(), "data": data.spec.to_dict(), **data.facts(), "world_size": world_size,
            "machine": machine_info(versions)}


def world_size_of(records: list[dict[str, Any]]) -> int:
    """The number of workers that trained last, from the run line or a later `world` line."""
    sizes = [r["world_size"] for r in records if r.get("kind") in ("run", "world") and "world_size" in r]
    return sizes[-1] if sizes else 1


def summary_line(figures: dict[str, Any], folder: Path, wall_s: float, backend: str, device: str,
                 data: Data) -> dict[str, Any]:
    return {"kind": "summary", **figures, "wall_s": wall_s, "checkpoint": str(folder / LAST),
            "best_checkpoint": str(folder / BEST) if (folder / BEST).is_file() else None,
            "backend": backend, "device": device, "data": data.spec.to_dict(), **data.facts()}


class Figures:
    """metrics.csv at every evaluation; the task's figures too, but at most every PLOT_INTERVAL_S
    seconds unless forced (at the end and at a stop), since drawing can cost more than a small
    model's epoch (hello: 85% of its time when drawn every epoch). Rank 0 alone draws."""

    def __init__(self, is_writer: bool, guard: Callable[[], None]):
        self.is_writer, self.guard = is_writer, guard
        self.drawn_at = -math.inf

    def draw(self, job: Job, run, force: bool = False) -> None:
        if not self.is_writer:
            return
        self.guard()  # matplotlib makes missing folders: never one the user deleted
        run.log.write_csv(run.folder / "metrics.csv")
        clock = time.perf_counter()
        if force or clock - self.drawn_at >= PLOT_INTERVAL_S:
            job.plot(run)
            self.drawn_at = clock
