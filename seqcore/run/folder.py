"""Output folders that are never clobbered: one run per folder, a lock against a second live run,
and every problem (not writable, full, someone else's files) found before any work starts.

Policy: a new run needs an empty or absent folder; `resume` continues the run in it;
`overwrite` removes the old run's files first, and only when the folder holds a seqcore run
(its `config.json`), so a mistyped --out can never empty a folder of other data. Without an
explicit folder, each run gets the next `version_N` under the task's default (as Lightning does).
"""
from __future__ import annotations

import enum
import errno
import fcntl
import os
import shutil
from pathlib import Path
from typing import Optional

from seqcore.errors import SeqcoreError
from seqcore.run.checkpoint import TEMP_SUFFIX, remove_stale_temp_files

CONFIG = "config.json"  # marks a folder as a seqcore run
LOCK = ".seqcore.lock"


class FolderGone(SeqcoreError):
    """The locked run folder is no longer the one the run locked."""


class Mode(str, enum.Enum):
    NEW = "new"
    RESUME = "resume"
    OVERWRITE = "overwrite"


def next_version(parent: Path) -> Path:
    """`parent/version_N` for the smallest N above every existing one."""
    taken = [int(p.name[len("version_"):]) for p in parent.glob("version_*")
             if p.name[len("version_"):].isdigit()] if parent.is_dir() else []
    return parent / f"version_{max(taken, default=-1) + 1}"


class OutputFolder:
    """A locked run folder; use as a context manager (the lock is released on exit or crash)."""

    def __init__(self, path: Path, mode: Mode, flag: str = "--out"):
        self.path, self.mode, self.flag = Path(path), Mode(mode), flag
        self._lock: Optional[int] = None
        self._created = False  # this run made the folder itself
        self._identity: Optional[tuple[int, int]] = None  # (device, inode) of the folder it locked

    def __enter__(self) -> "OutputFolder":
        self._create()
        # Refuse a folder this mode may not use before the lock file is created, so a
        # refused run leaves no .seqcore.lock in someone's folder; the check is repeated under the lock.
        # Where the lock file is already there, the lock goes first (a live run: "Another run is writing").
        if not (self.path / LOCK).exists():
            self._check_mode(ignore_stale=True)
        self._acquire()
        try:
            self._apply_mode()
            found = os.stat(self.path)
            self._identity = (found.st_dev, found.st_ino)
        except BaseException:
            self._release()
            raise
        return self

    def check_intact(self) -> None:
        """Refuse to write into a folder that was deleted, or deleted and made again (another inode),
        since this run locked it: nothing is re-created behind the user's back."""
        try:
            found = os.stat(self.path)
            same = (found.st_dev, found.st_ino) == self._identity
        except OSError:
            same = False
        if self._identity is not None and not same:
            raise FolderGone(f"The run folder {self.path} was deleted or replaced while the run was training; "
                             f"the run stopped and wrote nothing more (no folder or file was made again).")

    def __exit__(self, *exc) -> None:
        self._release()

    def _create(self) -> None:
        try:  # exists() raises PermissionError under a folder without permission
            if self.path.exists() and not self.path.is_dir():
                raise SeqcoreError(f"{self.flag} {self.path} is a file, not a folder.")
            self._created = not self.path.exists()
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SeqcoreError(f"Cannot create the folder {self.path} ({describe(error)}).") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise SeqcoreError(f"The folder {self.path} is not writable.")
        if not os.access(self.path, os.R_OK):  # iterdir() would raise PermissionError
            raise SeqcoreError(f"The folder {self.path} is not readable.")

    def _acquire(self) -> None:
        # flock, not a pid file: the kernel releases it when the holder dies, so a crashed run
        # never leaves the folder locked, while a live one always refuses a second.
        try:
            self._lock = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise SeqcoreError(f"Cannot write to {self.path} ({describe(error)}).") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise SeqcoreError(f"Another run is writing to {self.path} right now; wait for it to "
                               f"finish or choose another {self.flag}.") from None

    def discard(self) -> None:
        """Undo a new run that was refused before it trained (e.g. a missing corpus): its
        config.json goes, and the folder too when this run made it, so the same command can be
        given again once the problem is fixed. Only called while the lock is held."""
        (self.path / CONFIG).unlink(missing_ok=True)
        if self._created:
            self._release()
            (self.path / LOCK).unlink(missing_ok=True)
            try:
                self.path.rmdir()  # only if empty: nothing of anyone else's is removed
            except OSError:
                pass

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing drops the flock; the empty lock file may stay
            self._lock = None

    def _apply_mode(self) -> None:
        remove_stale_temp_files(self.path)  # a write killed mid-way; safe now that we hold the lock
        contents = self._check_mode()
        if self.mode is Mode.OVERWRITE:
            for item in contents:
                shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()

    def _check_mode(self, ignore_stale: bool = False) -> list[Path]:
        """Refuse a folder the mode may not use; returns its contents (without the lock file and,
        with ignore_stale, the temp files _apply_mode removes). Reads only."""
        contents = [p for p in self.path.iterdir() if p.name != LOCK and not (
            ignore_stale and p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX) and p.is_file())]
        is_run = (self.path / CONFIG).is_file()
        if self.mode is Mode.RESUME:
            if not is_run:
                raise SeqcoreError(f"{self.path} holds no run to resume (no {CONFIG}); start it "
                                   f"without --resume.")
        elif self.mode is Mode.OVERWRITE:
            if contents and not is_run:
                raise SeqcoreError(f"{self.path} is not empty and holds no seqcore run ({CONFIG}); "
                                   f"--overwrite only replaces runs, so choose another {self.flag}.")
        elif contents:
            hint = "--resume to continue it or --overwrite to replace it" if is_run else f"another {self.flag}"
            raise SeqcoreError(f"{self.path} is not empty; use {hint}.")
        return contents

    def check_space(self, needed_bytes: int) -> None:
        """Refuse to start when the disk cannot hold `needed_bytes` more (checkpoints and logs)."""
        free = shutil.disk_usage(self.path).free
        if free < needed_bytes:
            raise SeqcoreError(f"{self.path} has {free / 2**20:.1f} MB free, but this run needs about "
                               f"{needed_bytes / 2**20:.1f} MB for its checkpoints and logs.")


def describe(error: OSError) -> str:
    """'No space left on device' and the like, without the errno prefix."""
    if error.errno == errno.ENOSPC:
        return "no space left on device"
    return (error.strerror or str(error)).lower()
