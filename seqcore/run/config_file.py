"""A run folder's config.json: the task, its full configuration, argv, seqcore version, git commit,
times and machine. It marks the folder as a run, is what --config reruns and what --resume starts
from; the checkpoint, not this file, is what a resume is checked against (seqcore.run.resume)."""
from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping, Optional

from seqcore import __version__
from seqcore.errors import SeqcoreError
from seqcore.run.checkpoint import atomic_write
from seqcore.run.folder import CONFIG
from seqcore.run.machine import machine_info


def write_run_config(folder: Path, task: str, config: Mapping[str, Any], created: str, resumed: list,
                     make_folder: bool = True) -> None:
    """make_folder=False: a missing folder is an error (a resume never re-creates a deleted run)."""
    record = {"task": task, "config": dict(config), "argv": sys.argv, "seqcore_version": __version__,
              "git_commit": git_commit(), "created": created, "resumed": resumed, "machine": machine_info()}
    atomic_write(folder / CONFIG, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=1)), make_folder)


def read_run_config(path: Path, flag: str = "") -> dict[str, Any]:
    """The config.json of a run folder (or the file itself), or one sentence on why it cannot be read;
    `flag` names the option it came from (--config) in that sentence."""
    path = Path(path)
    file = path / CONFIG if path.is_dir() or not flag else path
    named = f"{flag} {path}" if flag else str(file)
    try:
        saved = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SeqcoreError(f"{named}: no such file." if flag and file == path
                           else f"{path} holds no run ({CONFIG} is missing).") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SeqcoreError(f"{named} cannot be read ({error}).") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict) or not isinstance(
            saved.get("task"), str):
        raise SeqcoreError(f"{named} is not a seqcore run configuration (a run's config.json).")
    return saved


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def git_commit() -> Optional[str]:
    root = Path(__file__).resolve().parents[2]  # the checkout (seqcore/run/config_file.py), when installed editable
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
