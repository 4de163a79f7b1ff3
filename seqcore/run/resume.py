"""A resume: what the run folder holds (config.json, the last checkpoint, its position, the metrics
lines), and the check that a request matches the run it would continue.

The checkpoint is the record of what its weights were trained with; config.json is a copy for
people to read, and anyone can edit it. So a resume is compared with the checkpoint, here in the
run layer, whether the request came from a command line, a config file or a Python call:
1. `check_request`, before any data or framework loads: the request's configuration, field by
   field, against the configuration the checkpoint recorded (before the first checkpoint, and
   for a format-2 checkpoint, which recorded none, against config.json); and config.json
   against the checkpoint, so that a hand edit is named as such;
2. `check_specs`, once the task has read its data and built its model spec: the typed record,
   which every format holds: the backend, the model spec, the training spec (all but its
   epochs) and the data (its identity where recorded, and the SHA-256 of its files).
Fields in `resumable` (those that do not change the numbers: epochs, patience, output flags,
the device, a data location whose files are then checked by their hashes) may differ.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Collection, Mapping, Optional

from seqcore.data.fingerprint import fingerprint_changes
from seqcore.errors import SeqcoreError
from seqcore.model.spec import ModelSpec
from seqcore.run.checkpoint import FORMAT, LAST, Checkpoint, load_checkpoint
from seqcore.run.config_file import read_run_config
from seqcore.run.contract import Data
from seqcore.run.folder import CONFIG
from seqcore.run.legacy import INEXACT
from seqcore.run.log import read_metrics
from seqcore.run.position import Position, checked_position
from seqcore.train.spec import TrainSpec

RESUME_HINT = "a resumed run keeps its configuration; start a new run (another --out) to change it"
NOT_RESUMABLE_TRAIN = ("num_epochs",)  # the one training-spec field a resume may change


@dataclasses.dataclass
class ResumeState:
    saved: dict[str, Any]  # config.json
    checkpoint: Optional[Checkpoint]  # model.safetensors; None when the run stopped before writing one
    position: Position  # where that checkpoint stopped (checked once)
    kept_records: list[dict[str, Any]]  # metrics lines up to the checkpoint
    later_records: list[dict[str, Any]]  # metrics lines written after it (their steps run again)

    def summary_written(self) -> bool:
        """True when metrics.jsonl held a summary line after the checkpoint's lines."""
        return any(r.get("kind") == "summary" for r in self.later_records)


def read_resume(folder: Path, task: str) -> ResumeState:
    """The folder's run, refused in one sentence when it is another task's or damaged."""
    saved = read_run_config(folder)
    if saved["task"] != task:
        raise SeqcoreError(f"{folder} holds a {saved['task']} run, not a {task} run; "
                           f"resume it with python -m tasks.{saved['task']}.")
    path = folder / LAST
    checkpoint = load_checkpoint(path) if path.is_file() else None
    position = Position()
    if checkpoint is not None and checkpoint.position:  # refused before a framework loads
        position = checked_position(path, checkpoint.position)
    metrics = folder / "metrics.jsonl"
    records = read_metrics(metrics, warn=False) if metrics.is_file() else []
    kept = position.num_records
    return ResumeState(saved, checkpoint, position, records[:kept], records[kept:])


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _show(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def differences(saved: Mapping[str, Any], request: Mapping[str, Any],
                resumable: Collection[str]) -> list[tuple[str, Any, Any]]:
    """(field, request's value, saved value) for each field both hold that a resume may not change.
    A field the saved configuration lacks (a run from before the field existed) is not compared
    here; the typed specs still are (check_specs)."""
    return [(name, request[name], saved[name]) for name in request
            if name in saved and name not in resumable and _plain(request[name]) != _plain(saved[name])]


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def refusal(folder: Path, found: list[tuple[str, Any, Any]]) -> SeqcoreError:
    """'--lr 0.01 differs from the run in DIR (1.0); a resumed run keeps its configuration; ...'"""
    given = _listed([f"{flag(name)} {_show(value)}" for name, value, _ in found])
    saved = _listed([_show(value) for _, _, value in found])
    verb = "differs" if len(found) == 1 else "differ"
    return SeqcoreError(f"{given} {verb} from the run in {folder} ({saved}); {RESUME_HINT}.")


def check_request(folder: Path, state: ResumeState, task: str, config: Mapping[str, Any],
                  resumable: Collection[str]) -> None:
    """Step 1: the request (and config.json) against the configuration the run was trained with."""
    checkpoint = state.checkpoint
    recorded = checkpoint.provenance.get("config") if checkpoint is not None else None
    if checkpoint is not None and checkpoint.format == FORMAT and checkpoint.provenance.get("task") != task:
        raise SeqcoreError(f"{folder / LAST} holds another model than this run's configuration describes (a "
                           f"{checkpoint.provenance.get('task')} checkpoint); the folder was changed by hand.")
    if isinstance(recorded, dict):
        edited = differences(recorded, state.saved["config"], resumable)
        if edited:
            shown = _listed([f"{flag(name)} {_show(value)}" for name, value, _ in edited])
            kept = _listed([_show(value) for _, _, value in edited])
            raise SeqcoreError(f"{folder / CONFIG} was edited: it says {shown}, where the checkpoint {LAST} was "
                               f"trained with {kept}; restore it: {RESUME_HINT}.")
    found = differences(recorded if isinstance(recorded, dict) else state.saved["config"], config, resumable)
    if found:
        raise refusal(folder, found)


def check_specs(folder: Path, checkpoint: Checkpoint, backend: str, spec: ModelSpec, train: TrainSpec,
                data: Data) -> None:
    """Step 2: what the numbers depend on, in the types every checkpoint format holds."""
    if checkpoint.model_spec != spec:
        was, now = checkpoint.model_spec.to_dict(), spec.to_dict()
        changed = "; ".join(f"{k.replace('_', ' ')} {was[k]}, here {now[k]}" for k in was if was[k] != now[k])
        raise SeqcoreError(f"{folder / LAST} holds another model than this run's configuration describes "
                           f"({changed}); the folder was changed by hand.")
    written_by = checkpoint.provenance.get("backend")
    found = [("backend", backend, written_by)] if written_by is not None and written_by != backend else []
    if checkpoint.train_spec is not None:
        saved, asked = checkpoint.train_spec.to_dict(), train.to_dict()
        found += [(name, asked[name], saved[name]) for name in saved
                  if name not in NOT_RESUMABLE_TRAIN and asked[name] != saved[name]]
    if found:
        raise refusal(folder, found)
    changed = _data_changes(checkpoint, data)
    if changed:
        raise SeqcoreError(f"The data of the run in {folder} is not the data it was trained on ({changed}); "
                           f"{RESUME_HINT}.")
    changed = fingerprint_changes(checkpoint.fingerprint, data.fingerprint) if checkpoint.fingerprint else ""
    if changed:
        raise SeqcoreError(f"The data of the run in {folder} changed since it was trained ({changed}); a resume "
                           f"needs the same bytes (a moved copy of the same files resumes).")


def _data_changes(checkpoint: Checkpoint, data: Data) -> str:
    """'max_tokens was 600, is 700' for the data spec's identity (less what a format-2 checkpoint
    could not record) and the counts both recorded; '' when they agree."""
    was, now = {}, {}
    if checkpoint.data_spec is not None:
        inexact = () if checkpoint.format == FORMAT else INEXACT.get(checkpoint.data_spec.kind, ())
        was = {k: v for k, v in checkpoint.data_spec.identity().items() if k not in inexact}
        now = {k: v for k, v in data.spec.identity().items() if k not in inexact}
    facts = data.facts()
    for key, value in facts.items():
        if key in checkpoint.provenance and isinstance(value, int) and not isinstance(value, bool):
            was[key], now[key] = checkpoint.provenance[key], value
    return "; ".join(f"{k} was {was.get(k)}, is {now.get(k)}" for k in sorted(set(was) | set(now))
                     if was.get(k) != now.get(k))
