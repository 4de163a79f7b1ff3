"""Child processes that never outlive the command that started them.

Every command that starts processes (tasks.compare, tasks.benchmark, tasks.launch) starts them
through an `Owner`:
- each child leads a session of its own, so a terminal's Ctrl-C reaches the command alone, and the
  command decides: it passes the stop on to the children that can keep their work (a training run
  checkpoints), kills the ones that have nothing to keep (a measurement), and keeps what finished;
- the kernel sends each child its `death_signal` when the command dies without that chance (SIGKILL,
  a crash): Linux's PR_SET_PDEATHSIG, set in the child between fork and exec. It fires when the
  *thread* that started the child ends, so children are started from the command's main thread.
A process that someone else started (torchrun's workers) ties itself with `tie_to_parent`.

Standard library only (and seqcore.errors).
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Mapping, Optional, Sequence

from seqcore.errors import SeqcoreError

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _load_prctl() -> Optional[Callable[..., int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


# Resolved once, at import: between fork and exec the child only calls it (no import, no lookup).
_PRCTL = _load_prctl()


def set_death_signal(signum: int) -> bool:
    """Ask the kernel to send this process `signum` when its parent (thread) dies; False where the
    platform cannot (not Linux)."""
    return _PRCTL is not None and _PRCTL(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0


def tie_to_parent(death_signal: int = signal.SIGKILL) -> bool:
    """For a process started by a launcher that is not ours (torchrun's workers): die with it.
    Returns False when the launcher is already gone (this process was handed to init, pid 1): the
    caller should stop. A death before this call cannot be seen otherwise."""
    set_death_signal(death_signal)
    return os.getppid() != 1


TORCHRUN_ENV = "TORCHELASTIC_RUN_ID"  # set by torchrun in every worker's environment


def tie_to_launcher(environ: Mapping[str, str] = os.environ) -> None:
    """In a task's process: a worker that torchrun started dies with torchrun (its agent starts the
    workers in sessions of their own and, killed, leaves them running). Our own launchers tie their
    children when they start them."""
    if TORCHRUN_ENV in environ and not tie_to_parent(signal.SIGKILL):
        raise SeqcoreError("The torchrun that started this worker is gone; the worker stops before it starts.")


def start(argv: Sequence[str], *, death_signal: int = signal.SIGKILL, **popen: Any) -> subprocess.Popen:
    """`subprocess.Popen(argv, **popen)` in a session of its own, sent `death_signal` when the
    calling thread dies."""
    parent = os.getpid()

    def tie() -> None:  # in the child, between fork and exec
        set_death_signal(death_signal)
        if os.getppid() != parent:  # the command died before the tie: nobody would stop this child
            os._exit(1)

    return subprocess.Popen(list(argv), preexec_fn=tie, start_new_session=True, **popen)


def signal_group(child: subprocess.Popen, signum: int) -> None:
    """`signum` to the child's session (the child and whatever it started without a session of its
    own), while the child itself is alive (after it is reaped its id may be reused)."""
    if child.poll() is None:
        try:
            os.killpg(child.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


class Owner:
    """The children of one command and its stop signals; a context manager around the command's work.

    Inside it, SIGINT and SIGTERM do not raise: the first is recorded in `signum` and each live child
    gets its `on_stop` signal (SIGTERM: a training run checkpoints and stops, and a child still starting
    up ends without a traceback, which SIGINT's KeyboardInterrupt would print; SIGKILL: a measurement
    that has nothing to keep; None: nothing, e.g. MXNet's servers, which the workers need until they
    stop); a second one kills every child at once. The command checks `signum` between its steps and ends
    with its own sentence, keeping what finished. On exit, by return or exception, every child still
    alive is killed with its session.
    """

    def __init__(self) -> None:
        self.signum: Optional[int] = None
        self._children: dict[subprocess.Popen, Optional[int]] = {}
        self._handlers: dict[int, Any] = {}

    def __enter__(self) -> "Owner":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._handlers[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.kill_all()
        finally:
            for signum, handler in self._handlers.items():
                signal.signal(signum, handler)
            self._handlers.clear()

    @property
    def stopped(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def start(self, argv: Sequence[str], *, death_signal: int = signal.SIGKILL,
              on_stop: Optional[int] = signal.SIGKILL, **popen: Any) -> subprocess.Popen:
        """A child (see `start`), stopped as `on_stop` says when the command is asked to stop."""
        child = start(argv, death_signal=death_signal, **popen)
        self._children[child] = on_stop
        if self.signum is not None:  # the stop came while it was starting
            self._pass_on(child, on_stop)
        return child

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
        """`subprocess.run(argv, capture_output=True, text=True)` through `start`; kwargs go to `start`."""
        child = self.start(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
        try:
            out, err = child.communicate()
        finally:
            self.forget(child)
        return subprocess.CompletedProcess(list(argv), child.returncode, out, err)

    def wait(self, child: subprocess.Popen) -> int:
        try:
            return child.wait()
        finally:
            self.forget(child)

    def forget(self, child: subprocess.Popen) -> None:
        """A child that ended (and was reaped by the caller)."""
        self._children.pop(child, None)

    def kill_all(self) -> None:
        for child in list(self._children):
            signal_group(child, signal.SIGKILL)
        for child in list(self._children):
            child.wait()
            self.forget(child)

    def stop_all(self, signum: int, grace_s: float) -> None:
        """`signum` to every live child, up to `grace_s` for them to end, then SIGKILL."""
        for child in list(self._children):
            signal_group(child, signum)
        deadline = time.monotonic() + grace_s
        for child in list(self._children):
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.kill_all()

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # the second: at once
            for child in list(self._children):
                signal_group(child, signal.SIGKILL)
            return
        self.signum = signum
        for child, on_stop in list(self._children.items()):
            self._pass_on(child, on_stop)

    @staticmethod
    def _pass_on(child: subprocess.Popen, on_stop: Optional[int]) -> None:
        if on_stop is not None:
            signal_group(child, on_stop)
