"""What a model will need, checked before anything is allocated or measured: memory for its
weights, gradients and optimizer state, and disk for its checkpoints."""
from __future__ import annotations

import math
import os
from typing import Optional

from seqcore.backend import Optimizer
from seqcore.errors import SeqcoreError
from seqcore.model.params import param_shapes
from seqcore.model.spec import ModelSpec
from seqcore.train.spec import TrainSpec


def num_params(spec: ModelSpec) -> int:
    # math.prod, not np.prod: NumPy's int64 silently wraps for an absurd --hidden-size
    return sum(math.prod(shape) for shape in param_shapes(spec).values())


def check_memory(spec: ModelSpec, train: TrainSpec) -> None:
    """Refuse, in one sentence, a model whose weights and gradients (and Adam's two moments),
    4 bytes each, exceed the available memory."""
    floats = num_params(spec)
    adam = train.optimizer is Optimizer.ADAM
    needed = 4 * floats * (4 if adam else 2)
    available = available_memory()
    if available is not None and needed > available:
        raise SeqcoreError(f"A model of {floats:,} parameters needs about {needed / 2**30:,.1f} GB of memory "
                           f"for its weights and gradients{' and Adam moments' if adam else ''}, but "
                           f"{available / 2**30:,.1f} GB is available; choose a smaller --hidden-size "
                           f"(or --num-layers).")


def checkpoint_bytes(spec: ModelSpec, train: TrainSpec) -> int:
    """Last and best checkpoints plus one being written, with Adam's two moments, and logs."""
    per_checkpoint = 4 * num_params(spec) * (3 if train.optimizer is Optimizer.ADAM else 1) + 65536
    return 3 * per_checkpoint + 2**20


def available_memory() -> Optional[int]:
    """Bytes of memory a new allocation can get: MemAvailable, else the free pages; None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
