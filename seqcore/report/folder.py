"""The output folder of a tool (a comparison report, a benchmark), under the run layer's policy
(seqcore/run/folder.py): never silently replaced, continued with --resume, replaced with
--overwrite only when it holds this tool's own output, another command's folder (a training run, a
report given to the benchmark) refused whatever the flags, and a lock against a second live writer.

A marker file (REPORT, BENCHMARK) says which tool wrote the folder and with which command: its
`identity` (the settings that shape the results) and argv.
"""
from __future__ import annotations

import datetime
import fcntl
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

from seqcore.errors import SeqcoreError
from seqcore.run.folder import CONFIG, describe

REPORT = "report.json"  # a comparison report (tasks.compare)
BENCHMARK = "benchmark-command.json"  # a benchmark (tasks.benchmark, either mode)
OWNERS = {CONFIG: ("run", "a training run"), REPORT: ("report", "a comparison report"),
          BENCHMARK: ("benchmark", "a benchmark")}  # marker: (short name, description)


class ToolFolder:
    """A locked output folder; use as a context manager.

    marker: this tool's marker file; identity: what must be equal to continue. continue_same: the
    same command continues its folder without --resume (compare: "run it again to continue");
    resume_any: --resume continues even an earlier folder of another identity (compare: the report
    goes on with the new command's runs); otherwise --resume needs the same identity.
    """

    def __init__(self, path: Path, marker: str, identity: Mapping[str, Any], *, resume: bool = False,
                 overwrite: bool = False, continue_same: bool = False, resume_any: bool = False,
                 flag: str = "--out"):
        if resume and overwrite:
            raise SeqcoreError("--resume and --overwrite exclude each other: continue the folder or replace it.")
        self.path, self.marker, self.identity = Path(path), marker, dict(identity)
        self.resume, self.overwrite, self.flag = resume, overwrite, flag
        self.continue_same, self.resume_any = continue_same, resume_any
        self.lock_name = f".{Path(marker).stem}.lock"
        self.noun, self.kind = OWNERS[marker]
        self._lock: Optional[int] = None
        self.continued = False  # an earlier folder of this tool goes on
        self.previous: Optional[dict] = None  # its identity

    def check(self) -> None:
        """Refuse, reading only, a folder this command may not use."""
        path = self.path
        try:  # exists() raises under a folder without permission; a file above the path is ENOTDIR
            if path.exists() and not path.is_dir():
                raise SeqcoreError(f"{self.flag} {path} is a file, not a folder.")
            contents = [p for p in path.iterdir() if not p.name.startswith(".")] if path.is_dir() else []
        except OSError as error:
            raise SeqcoreError(f"Cannot use {self.flag} {path} ({describe(error)}).") from None
        if self.overwrite and (path / self.marker).is_file():
            return  # this tool's folder, damaged or not: replaced
        saved = self.saved()
        self.previous = saved.get("identity") if saved else None
        if saved is None:
            foreign = next((name for name in OWNERS if name != self.marker and (path / name).is_file()), None)
            if foreign is not None:
                raise SeqcoreError(f"{path} holds {OWNERS[foreign][1]} ({foreign}), not {self.kind}; "
                                   f"choose another {self.flag}.")
            if contents:
                raise SeqcoreError(f"{self.flag} {path} is not empty and holds no {self.noun} ({self.marker} is "
                                   f"missing); choose another {self.flag}.")
            if self.resume:
                raise SeqcoreError(f"--resume: {path} holds no {self.noun} to continue.")
            return
        same = saved.get("identity") == self.identity
        if (self.resume and self.resume_any) or (same and (self.resume or self.continue_same)):
            self.continued = True
            return
        differs = ", ".join(sorted(k for k in set(saved.get("identity", {})) | set(self.identity)
                                   if saved.get("identity", {}).get(k) != self.identity.get(k)))
        if self.resume:
            raise SeqcoreError(f"{path} holds the {self.noun} of other settings (they differ in {differs}); a "
                               f"resumed one keeps its settings: replace it with --overwrite or choose another "
                               f"{self.flag}.")
        if same:
            raise SeqcoreError(f"{path} holds an earlier {self.noun}; continue it with --resume, "
                               f"replace it with --overwrite, or choose another {self.flag}.")
        raise SeqcoreError(f"{path} holds the {self.noun} of another command (it differs in {differs}); continue it "
                           f"with --resume, replace it with --overwrite, or choose another {self.flag}.")

    def saved(self) -> Optional[dict]:
        """The marker's record, None when there is none; one sentence when it is damaged."""
        path = self.path / self.marker
        try:
            if not path.is_file():
                return None
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise SeqcoreError(f"{path} is damaged; replace the folder with --overwrite.") from None
        if not isinstance(saved, dict) or not isinstance(saved.get("identity", {}), dict):
            raise SeqcoreError(f"{path} is damaged; replace the folder with --overwrite.")
        return saved

    def __enter__(self) -> "ToolFolder":
        self.check()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = os.open(self.path / self.lock_name, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as error:
            raise SeqcoreError(f"Cannot write to {self.flag} {self.path} ({describe(error)}).") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock)
            self._lock = None
            raise SeqcoreError(f"Another command is writing to {self.path} right now ({self.kind}); wait for it "
                               f"to finish or choose another {self.flag}.") from None
        try:
            self.check()  # again, under the lock: the folder may have changed while we waited
            if self.overwrite and (self.path / self.marker).is_file():
                for entry in self.path.iterdir():
                    if entry.name != self.lock_name:
                        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            saved = {} if self.overwrite else self.saved() or {}
            record = {"identity": self.identity, "argv": sys.argv, "created": saved.get("created", now), "updated": now}
            temp = self.path / f".{self.marker}.tmp"
            temp.write_text(json.dumps(record, indent=1))
            os.replace(temp, self.path / self.marker)  # whole or not at all, whenever the command dies
        except OSError as error:
            self.__exit__()
            raise SeqcoreError(f"Cannot write to {self.flag} {self.path} ({describe(error)}).") from None
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def is_locked(lock: Path) -> bool:
    """Whether a live process holds the flock on `lock` (a run's or a tool's folder lock)."""
    try:
        handle = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(handle)
    return False
