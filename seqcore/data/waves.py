"""Sine waves as data: the sin(t) -> cos(t) windows and the next-value segments of tasks.sine.

Computed, not read: the same numbers on every backend, from the window index alone (sin2cos) or
from phases drawn lazily from the run's batch Generator (next). seqcore.data.spec.SineSpec is how
a run gets them.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

SIN2COS, NEXT = "sin2cos", "next"
MODES = (SIN2COS, NEXT)
PHASES = ("fixed", "random")
STEP = 0.1  # rad between samples in next mode: 100 steps span 10 rad, about 1.6 periods

Batch = tuple[np.ndarray, np.ndarray]


def sin2cos_batches(first: int, count: int, num_steps: int, batch_size: int) -> Iterator[Batch]:
    """Windows first .. first + count - 1; window k covers [k*pi, (k+1)*pi), row j shifted by 2*pi*j/N."""
    shift = 2 * np.pi * np.arange(batch_size) / batch_size  # (N,)
    for k in range(first, first + count):
        t = np.linspace(k * np.pi, (k + 1) * np.pi, num_steps, endpoint=False)[:, None] + shift  # (T, N)
        yield np.sin(t)[..., None].astype(np.float32), np.cos(t)[..., None].astype(np.float32)


def next_batches(rng: np.random.Generator, count: int, num_steps: int, batch_size: int,
                 phase: str) -> Iterator[Batch]:
    """sin(phase + 0.1 k), k = 0..T-1, and the value after each; phases drawn lazily from `rng`."""
    for _ in range(count):
        start = rng.uniform(-np.pi / 2, np.pi / 2, batch_size) if phase == "random" else np.zeros(batch_size)
        wave = np.sin(start + STEP * np.arange(num_steps + 1)[:, None])[..., None].astype(np.float32)  # (T+1, N, 1)
        yield wave[:-1], wave[1:]
