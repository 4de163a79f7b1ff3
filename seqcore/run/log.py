"""A run's metrics: records in memory, appended to metrics.jsonl one whole line at a time, metrics.csv
and TensorBoard; and how they are read back."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from seqcore.errors import SeqcoreError


class MetricsLog:
    """A run's records, kept in memory and appended to `metrics.jsonl` one whole line at a time.

    A failed write (a full disk) is cut back, so the file never ends in half a record. The
    records also go to `metrics.csv` (the epoch lines, rewritten whole) and, when given, a
    TensorBoard writer (every number of every epoch and step line). `guard` is called before
    every write (the run's check that its folder is still the one it locked).
    """

    def __init__(self, path: str | os.PathLike, records: Sequence[Mapping[str, Any]] = (),
                 tensorboard: Any = None, guard: Optional[Callable[[], None]] = None):
        self.path = Path(path)
        self.records: list[dict[str, Any]] = [dict(r) for r in records]
        self.tensorboard = tensorboard
        self.guard = guard or (lambda: None)
        self.guard()
        _rewrite(self.path, "".join(_line(r) for r in self.records))

    def write(self, record: Mapping[str, Any]) -> None:
        self.guard()
        data = _line(record).encode("utf-8")
        with self.path.open("ab") as handle:
            size = handle.tell()
            try:
                handle.write(data)
                handle.flush()
            except OSError:
                handle.truncate(size)
                raise
        self.records.append(dict(record))
        if self.tensorboard is not None and record.get("kind") in ("epoch", "step"):
            x = record.get("epoch") if record["kind"] == "epoch" else record.get("global_step")
            for key, value in record.items():
                if key not in ("kind", "epoch", "step", "global_step") and _is_number(value):
                    self.tensorboard.add_scalar(f"{record['kind']}/{key}", value, x)
            self.tensorboard.flush()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("kind") == kind]

    def write_csv(self, path: str | os.PathLike, kind: str = "epoch") -> None:
        """The `kind` records as CSV, columns in order of first appearance, written atomically."""
        self.guard()
        rows = self.of_kind(kind)
        columns = list(dict.fromkeys(k for r in rows for k in r if k != "kind" and not isinstance(r[k], (dict, list))))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        _rewrite(Path(path), buffer.getvalue())


def _line(record: Mapping[str, Any]) -> str:
    return json.dumps(_finite(record)) + "\n"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _rewrite(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically (temp file beside it, then rename)."""
    tmp = path.with_name(f".{path.name}.rewrite.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_metrics(path: str | os.PathLike, warn: bool = True) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl; a torn last line (a killed write) is skipped with a warning,
    a damaged line before it is refused in one sentence."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise SeqcoreError(f"Cannot read {path} ({error}).") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            if number == len(lines):
                if warn:
                    print(f"warning: {path} ends in a torn line (a write was cut off); it is skipped.",
                          file=sys.stderr)
                break
            raise SeqcoreError(f"Line {number} of {path} is not a JSON record; the file is damaged.") from None
        records.append(record)
    return records


def _finite(record: Mapping[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: write non-finite floats as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


class MemoryLog(MetricsLog):
    """The records, kept in memory only (rank 0 writes metrics.jsonl)."""

    def __init__(self, records: Sequence[Mapping[str, Any]] = ()):
        self.path, self.tensorboard, self.guard = None, None, lambda: None
        self.records = [dict(r) for r in records]

    def write(self, record: Mapping[str, Any]) -> None:
        self.records.append(dict(record))

    def write_csv(self, path, kind: str = "epoch") -> None:
        pass
