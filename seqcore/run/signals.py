"""SIGINT and SIGTERM during a run: the first asks for a stop at the end of the current span of
steps (where the weights and the carried state are, so a checkpoint can be written and resumed
exactly); a second one stops at once, keeping the checkpoints already written."""
from __future__ import annotations

import signal
import sys
import threading
from typing import Optional

from seqcore.errors import SeqcoreError


class RunInterrupted(SeqcoreError):
    """SIGINT or SIGTERM stopped the run after a whole span of steps and a checkpoint."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


class StopRequested(Exception):
    """Raised at a span's end when a signal asked the run to stop (caught by the run)."""


class StopSignals:
    """The handlers, installed while the run trains (the main thread only: signals go there)."""

    def __init__(self) -> None:
        self.pending: Optional[int] = None  # the first signal received, until the run stops for it
        self._old: dict = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._old[signum] = signal.signal(signum, self.handle)

    def restore(self) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)
        self._old.clear()

    def handle(self, signum: int, frame) -> None:
        if self.pending is not None:  # the second one: out at once, the last checkpoint stays
            raise KeyboardInterrupt
        self.pending = signum
        print(f"\n{name(signum)}: stopping after this span of steps and writing a checkpoint "
              f"(again to stop at once)", file=sys.stderr)


def name(signum: int) -> str:
    return signal.Signals(signum).name
