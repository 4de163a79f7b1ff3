"""A checkpoint's tensors, read whatever their dtype and checked as the run layer will use them.

seqcore computes in float32. Weights, optimizer moments and recurrent state written in float16,
bfloat16 or float64 (by hand, or by another tool) are accepted by casting them to float32, and
only then checked for finite values: a float64 1e39 is finite there but infinite in float32, so
the check must come after the cast. Integers and booleans are refused as weights in one
sentence; the optimizer's step counter is the one integer tensor a checkpoint holds. NumPy has
no bfloat16, so those bytes are widened to float32 here (the upper half of a float32).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from seqcore.errors import SeqcoreError

FLOATS = ("F16", "BF16", "F32", "F64")  # safetensors dtype names cast to float32
INTEGERS = ("I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64")
HEADER_BYTES = 8  # little-endian u64: the length of the JSON header that follows


def read_file(path: Path) -> tuple[dict[str, str], dict[str, tuple[str, np.ndarray]]]:
    """(metadata, {name: (safetensors dtype, array)}); floats come back as float32, integers as int64."""
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
            names = list(handle.keys())
            dtypes = {name: handle.get_slice(name).get_dtype() for name in names}
            tensors = {name: (dtypes[name], _array(path, handle, name, dtypes[name])) for name in names}
    except (SafetensorError, OSError, ValueError) as error:
        raise SeqcoreError(f"{path} is not a readable safetensors checkpoint ({error}).") from None
    return metadata, tensors


def _array(path: Path, handle, name: str, dtype: str) -> np.ndarray:
    if dtype == "BF16":
        return _bfloat16(path, name)
    if dtype in FLOATS:
        with np.errstate(over="ignore"):  # a float64 beyond float32's range becomes inf: refused later
            return handle.get_tensor(name).astype(np.float32)
    if dtype in INTEGERS:
        return handle.get_tensor(name).astype(np.int64)
    if dtype == "BOOL":
        return handle.get_tensor(name)
    raise SeqcoreError(f"{path} holds {name} as {dtype}, a type seqcore does not read; it was not written "
                       f"by seqcore.")


def _bfloat16(path: Path, name: str) -> np.ndarray:
    """The bfloat16 tensor `name` as float32 (safe_open has checked the header and offsets)."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(HEADER_BYTES))
        entry = json.loads(handle.read(length))[name]
        begin, end = entry["data_offsets"]
        handle.seek(HEADER_BYTES + length + begin)
        halves = np.frombuffer(handle.read(end - begin), "<u2")
    return (halves.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def checked_floats(path: Path, name: str, dtype: str, value: np.ndarray, what: str) -> np.ndarray:
    """`value` (float32 by now) when it came from a float type and is finite in float32, else one sentence."""
    if dtype not in FLOATS:
        raise SeqcoreError(f"{path} holds {name} as {_numpy_name(dtype)}, not floating point; it was not "
                           f"written by seqcore.")
    if not np.all(np.isfinite(value)):
        cast = f" once cast from {_numpy_name(dtype)} to float32" if dtype != "F32" else ""
        raise SeqcoreError(f"{path} holds non-finite values in {name}{cast}; the {what} are unusable.")
    return value


def _numpy_name(dtype: str) -> str:
    """'int32' for safetensors' 'I32', as NumPy names the type."""
    return {"BF16": "bfloat16", "BOOL": "bool"}.get(dtype, dtype.replace("F", "float").replace("I", "int")
                                                   .replace("U", "uint"))
