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

from seqcore.errors import SeqcoreError

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
        raise SeqcoreError(f"{field} must be a positive integer, got {value!r}.")


def positive_float(value: Any, field: str) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SeqcoreError(f"{field} must be a positive number, got {value!r}.")


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
