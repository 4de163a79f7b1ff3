"""What a model's inputs must be, checked alike on every backend (one sentence each).

Time-major token ids (T, N) of an integer type in [0, V) for ONEHOT and EMBEDDING models,
float features (T, N, I) for DENSE ones; at least one step of one sequence. Without this the
frameworks differ: MXNet's one-hot of an id outside [0, V) is a row of zeros (the logits of an
all-zero input, silently) and it truncates float ids, where PyTorch raises. The backends check a
batch in NumPy before it moves to the device, so reading the ids' range costs no device sync.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from seqcore.errors import SeqcoreError
from seqcore.model.spec import InputKind, ModelSpec

KINDS = {"i": "int", "u": "int", "f": "float", "b": "bool"}  # NumPy's dtype.kind -> the family checked


def dtype_family(dtype: np.dtype) -> str:
    """'int', 'float', 'bool' or 'other' (complex, text, objects)."""
    return KINDS.get(np.dtype(dtype).kind, "other")


def check_inputs(spec: ModelSpec, shape: tuple[int, ...], family: str, dtype_name: str,
                 bounds: Optional[Callable[[], tuple[int, int]]]) -> None:
    """Refuse, in one sentence, inputs that `spec`'s model cannot read. family: dtype_family of
    the array's dtype, named `dtype_name` in the sentence; bounds: the ids' (min, max), asked for
    only once everything else has passed; None where reading them would cost a device sync."""
    shape = tuple(int(size) for size in shape)
    if spec.input_kind is InputKind.DENSE:
        if len(shape) != 3:
            raise SeqcoreError(f"A dense-input model reads time-major features of shape (T, N, I), got an array "
                               f"of shape {shape}.")
        if shape[2] != spec.input_size:
            raise SeqcoreError(f"This model reads {spec.input_size} features per step, got {shape[2]} (inputs of "
                               f"shape {shape}, time-major (T, N, I)).")
        if family != "float":
            raise SeqcoreError(f"Features must be floating point, got {dtype_name}.")
    else:
        if len(shape) != 2:
            raise SeqcoreError(f"A token model ({spec.input_kind.value} input) reads time-major ids of shape "
                               f"(T, N), got an array of shape {shape}.")
        if family != "int":
            raise SeqcoreError(f"Token ids must be integers, got {dtype_name}.")
    if 0 in shape[:2]:
        empty = "sequence (no time step)" if shape[0] == 0 else "batch (no sequence)"
        raise SeqcoreError(f"The inputs are an empty {empty}, shape {shape}: give at least one step of one "
                           f"sequence.")
    if spec.input_kind is not InputKind.DENSE and bounds is not None:
        low, high = (int(bound) for bound in bounds())
        if low < 0 or high >= spec.input_size:
            raise SeqcoreError(f"Token ids must be in [0, {spec.input_size}) for this model's vocabulary of "
                               f"{spec.input_size}, got ids from {low} to {high}.")


def checked_array(spec: ModelSpec, inputs) -> np.ndarray:
    """`inputs` (a NumPy array or nested lists) as a NumPy array, checked entirely (the ids'
    range by NumPy's min and max); the dtype is the caller's to convert."""
    array = np.asarray(inputs)
    check_inputs(spec, array.shape, dtype_family(array.dtype), array.dtype.name,
                 lambda: (array.min(), array.max()))
    return array
