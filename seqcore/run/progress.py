"""Progress for long runs: a tqdm bar with live figures on a terminal, plain lines elsewhere, and
output that survives a closed pipe (`... | head -1` must never stop a training run)."""
from __future__ import annotations

import os
import sys
from typing import Mapping, TextIO

from tqdm.auto import tqdm


class Progress:
    """A bar over `total` steps; `update` moves it and shows the figures given (loss, tokens/s)."""

    def __init__(self, total: int, description: str, enabled: bool = True, initial: int = 0):
        # disable=None: the bar only draws on a terminal, so logs and CI stay readable.
        self.bar = tqdm(total=total, initial=initial, desc=description, unit="batch", dynamic_ncols=True,
                        disable=None if enabled else True, leave=True, file=sys.stderr)

    def update(self, steps: int, figures: Mapping[str, float]) -> None:
        self.bar.set_postfix({k: _short(v) for k, v in figures.items()}, refresh=False)
        self.bar.update(steps)

    def log(self, line: str) -> None:
        """A line that stays above the bar (or is printed plainly when there is no bar)."""
        self.bar.write(line, file=sys.stdout)

    def close(self) -> None:
        self.bar.close()


def _short(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3f}"


class SurvivingStream:
    """A text stream whose writes never raise: once the reader has gone (a closed pipe, a closed
    descriptor), the output is dropped and the descriptor is pointed at /dev/null, so that
    neither this write nor Python's flush at exit can stop or fail the program."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                self._stream.write(text)
                self._stream.flush()  # a line at a time, so a reader sees progress as it happens
            except (OSError, ValueError):
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._drop()

    def _drop(self) -> None:
        self.closed_by_reader = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def protect_output() -> None:
    """Make stdout and stderr survive a reader that goes away (called once by command lines)."""
    if not isinstance(sys.stdout, SurvivingStream) and sys.stdout is not None:
        sys.stdout = SurvivingStream(sys.stdout)
    if not isinstance(sys.stderr, SurvivingStream) and sys.stderr is not None:
        sys.stderr = SurvivingStream(sys.stderr)


class SilentProgress:
    """What ranks above 0 show instead of a bar: nothing (rank 0 shows the progress)."""

    def update(self, steps: int, figures: Mapping[str, float]) -> None:
        pass

    def log(self, line: str) -> None:
        pass

    def close(self) -> None:
        pass
