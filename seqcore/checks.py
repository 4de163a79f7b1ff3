"""The checks every spec and config uses, in one place, each failing with one sentence.

Specs (model, training, data) and task configs validate their own fields when they are made,
through these helpers, so a value is judged the same way whether it came from the command line,
a config file, a resumed run or a Python call.
"""
from __future__ import annotations

import dataclasses
import math
from enum import Enum
from typing import Any, Mapping

import numpy as np

from seqcore.errors import ConfigError, SeqcoreError

FLOAT32_MAX = 3.4028234663852886e38


def parse_enum(kind: type[Enum], value: Any, field: str) -> Enum:
    """`kind(value)`, or a SeqcoreError listing the choices (e.g. a bad device given from Python)."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise SeqcoreError(f"Unknown {field} {value!r}: choose one of {choices}.") from None


def positive_int(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SeqcoreError(f"{field} must be a positive integer, got {_shown(value)}.")


def positive_float(value: Any, field: str) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SeqcoreError(f"{field} must be a positive number, got {_shown(value)}.")


# Strict values by declared type, for configs: the sentence names the field as its caller knows it
# (a flag such as --num-preds). NumPy scalars are accepted and stored as Python ones; bool is not
# a number here, though Python counts it as an int.

def whole_number(value: Any, name: str) -> int:
    """`value` as an int: Python or NumPy integers, never bools or floats (2.0 included)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name} must be a whole number, got {_shown(value)}.")
    return int(value)


def real_number(value: Any, name: str) -> float:
    """`value` as a float: Python or NumPy ints and floats, never bools or text. Finiteness is
    left to the range check that follows (its sentence says what is wanted)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {_shown(value)}.")
    return float(value)


def text(value: Any, name: str) -> str:
    """`value` as a plain str (a str enum member gives its value); empty text is refused."""
    if isinstance(value, Enum) and isinstance(value.value, str):
        value = value.value
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be text, got {_shown(value)}.")
    if not value.strip():
        raise ConfigError(f"{name} must be non-empty text, got {value!r}.")
    return str(value)


def true_or_false(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be true or false, got {_shown(value)}.")
    return bool(value)


def listed(value: Any, name: str, allow_empty: bool = False) -> tuple:
    """A tuple or list as a tuple. A bare string is refused: iterated, it would be one item per
    character ('time' as four one-letter prefixes)."""
    if isinstance(value, str):
        raise ConfigError(f"{name} takes a list of values, got the single text {value!r} (one value per "
                          f"character, if read as a list); give a list, e.g. [{value!r}].")
    if not isinstance(value, (tuple, list)):
        raise ConfigError(f"{name} takes a list of values, got {_shown(value)}.")
    if not value and not allow_empty:
        raise ConfigError(f"{name} needs at least one value, got none.")
    return tuple(value)


def _shown(value: Any) -> str:
    """A refused value as a sentence shows it: its repr, and its type where the repr hides it (a
    NumPy scalar as its Python value: NumPy 2's repr, np.float32(16.0), would name the type twice)."""
    if isinstance(value, np.generic):
        return f"{value.item()!r} ({type(value).__name__})"
    if isinstance(value, np.ndarray) or not isinstance(value, (int, float, str, type(None))):
        return f"{value!r} ({type(value).__name__})"
    return repr(value)


def plain(spec: Any) -> dict[str, Any]:
    """A spec dataclass as JSON-able values (enums as their strings)."""
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in dataclasses.asdict(spec).items()}


def build(cls: type, data: Mapping[str, Any]) -> Any:
    """`cls(**data)`, refusing unknown fields in one sentence."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SeqcoreError(f"Unknown {cls.__name__} field(s): {', '.join(unknown)}.")
    return cls(**data)
