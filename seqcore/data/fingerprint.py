"""A data fingerprint, {file: SHA-256 of its bytes}, as data specs' load() return it and checkpoints
record it; and the one way two of them are compared (a resume, tasks.evaluate)."""
from __future__ import annotations

from typing import Mapping


def fingerprint_changes(recorded: Mapping[str, str], actual: Mapping[str, str]) -> str:
    """'book.txt had SHA-256 0b367032e93c..., now 1a1a05eab793...' for each file whose bytes differ
    (or that only one side lists); '' when the data is the same."""
    def short(value) -> str:
        return f"{value[:12]}..." if isinstance(value, str) and len(value) > 12 else str(value)

    return ", ".join(f"{name} had SHA-256 {short(recorded.get(name))}, now {short(actual.get(name))}"
                     for name in sorted(set(recorded) | set(actual)) if recorded.get(name) != actual.get(name))
