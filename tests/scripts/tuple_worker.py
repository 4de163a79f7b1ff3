"""A tuple batch through one backend's `to_device`, in its own process (no model reads tuples yet:
the encoder-decoder that will comes with its own Loss members; the seam must carry its batches).

Usage: python tests/scripts/tuple_worker.py BACKEND OUT.json

Inputs (source ids (T, N) int64, source lengths (N,) int64, features (T, N, I) float64) and
targets (ids (T', N) int64, lengths (N,) int64) with the dropout masks of a 2-layer model:
for each array on the device, its dtype, shape and whether it holds the NumPy values.
"""
from __future__ import annotations

import json
import sys

import numpy as np

from seqcore.backend import Device, load_backend
from seqcore.model.params import init_params
from seqcore.model.spec import Cell, Impl, Loss, Readout
from tests.cases import DROPOUT, case_masks, modern_spec

T, T_OUT, N, I = 4, 5, 3, 2  # tests.cases.NUM_STEPS and BATCH: the masks' (T, N)


def to_numpy(array) -> np.ndarray:
    """An MXNet array (asnumpy) or a PyTorch tensor, without importing either."""
    return array.asnumpy() if hasattr(array, "asnumpy") else array.detach().cpu().numpy()


def main(name: str, out: str) -> None:
    backend = load_backend(name)
    spec = modern_spec(Cell.GRU, Impl.SCRATCH, 2, Readout.SEQUENCE, dropout=DROPOUT)
    model = backend.build_model(spec, init_params(spec, "uniform", 0), backend.resolve_device(Device.CPU))
    rng = np.random.default_rng(0)
    inputs = (rng.integers(0, 7, (T, N)), np.array([4, 2, 3]), rng.standard_normal((T, N, I)))
    targets = (rng.integers(0, 7, (T_OUT, N)), np.array([5, 1, 2]))
    masks = case_masks(spec)
    moved_inputs, moved_targets, moved_masks = backend.to_device(model, inputs, targets, masks,
                                                                 Loss.CROSS_ENTROPY)
    figures = {}
    for label, given, moved in (("inputs", inputs, moved_inputs), ("targets", targets, moved_targets),
                                ("masks", masks, moved_masks)):
        figures[label] = [{"dtype": str(part.dtype).replace("torch.", ""), "shape": list(part.shape),
                           "equal": bool(np.array_equal(to_numpy(part), np.asarray(array, to_numpy(part).dtype)))}
                          for array, part in zip(given, moved)]
        figures[label + "_kind"] = type(moved).__name__
    with open(out, "w") as file:
        json.dump(figures, file)


if __name__ == "__main__":
    main(*sys.argv[1:3])
