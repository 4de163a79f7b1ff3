"""Checkpoints: one safetensors file holding the canonical weights, the optimizer's state and
(at a stop inside an epoch) the carried recurrent state, with the model spec, training spec,
vocabulary, progress, resume position and data fingerprints stored as JSON in its metadata.

A single file can be replaced atomically: it is written next to its final name, flushed to
disk and renamed over it, so a crash or a NaN never leaves a half-written checkpoint and the
previous good one survives until the new one is complete. Being framework-neutral, a
checkpoint written by one backend loads on the other.

Tensor names: the canonical parameter names (seqcore.model.params), `optimizer/<name>` for the
optimizer's state (Backend.export_trainer_state) and `state/<i>` for the recurrent state.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import load_file, save_file

from seqcore.errors import SeqcoreError
from seqcore.model.params import check_params
from seqcore.model.spec import ModelSpec
from seqcore.train.spec import TrainSpec

FORMAT = "seqcore-checkpoint-2"
READABLE = ("seqcore-checkpoint-1", FORMAT)  # format 1 had no optimizer, position or fingerprints
OPTIMIZER, STATE = "optimizer/", "state/"
TEMP_SUFFIX = ".tmp"  # `.<name>.<random>.tmp` beside the target while it is written
LAST, BEST = "model.safetensors", "best.safetensors"  # a run folder's last and best checkpoints


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    model_spec: ModelSpec
    params: dict[str, np.ndarray]
    train_spec: Optional[TrainSpec] = None
    vocab: Optional[dict[str, Any]] = None  # Vocab.to_dict(), for token tasks
    progress: dict[str, Any] = dataclasses.field(default_factory=dict)  # epoch, metrics, backend...
    optimizer: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # canonical names
    recurrent_state: tuple[np.ndarray, ...] = ()  # (L, N, H) each, at a stop inside an epoch
    position: dict[str, Any] = dataclasses.field(default_factory=dict)  # where a resume continues
    data: dict[str, Any] = dataclasses.field(default_factory=dict)  # SHA-256 of the data files used


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` to `path` atomically; returns the path."""
    path = Path(path)
    params = check_params(checkpoint.model_spec, checkpoint.params)
    tensors = {**params, **{OPTIMIZER + k: v for k, v in checkpoint.optimizer.items()},
               **{f"{STATE}{i}": v for i, v in enumerate(checkpoint.recurrent_state)}}
    metadata = {
        "format": FORMAT,
        "model_spec": json.dumps(checkpoint.model_spec.to_dict()),
        "train_spec": json.dumps(checkpoint.train_spec.to_dict() if checkpoint.train_spec else None),
        "vocab": json.dumps(checkpoint.vocab),
        "progress": json.dumps(checkpoint.progress),
        "position": json.dumps(checkpoint.position),
        "data": json.dumps(checkpoint.data),
    }
    atomic_write(path, lambda tmp: save_file(
        {k: np.ascontiguousarray(v) for k, v in tensors.items()}, tmp, metadata=metadata))
    return path


def atomic_write(path: Path, write) -> None:
    """Call `write(temp_path)`, flush it to disk and rename it over `path`, mode 0644."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    try:
        write(tmp_name)
        os.chmod(tmp_name, 0o644)  # after writing: safetensors replaces the file, making it 0600
        with open(tmp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`, or explain in one sentence why not.

    Refused: a file that is not a seqcore checkpoint, metadata with missing keys or wrong types,
    weights that are not floating point, do not fit the spec, or are not finite.
    """
    path = Path(path)
    if not path.is_file():
        raise SeqcoreError(f"No checkpoint file at {path}.")
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise SeqcoreError(f"{path} is not a readable safetensors checkpoint ({error}).") from None
    if metadata.get("format") not in READABLE:
        raise SeqcoreError(f"{path} is a safetensors file but not a seqcore checkpoint.")
    try:
        fields = {key: json.loads(metadata[key]) for key in ("model_spec", "train_spec", "vocab", "progress")}
        for key in ("position", "data"):
            fields[key] = json.loads(metadata.get(key, "{}"))
    except KeyError as error:
        raise SeqcoreError(f"{path} has damaged seqcore metadata: the key {error} is missing.") from None
    except json.JSONDecodeError as error:
        raise SeqcoreError(f"{path} has damaged seqcore metadata: not JSON ({error}).") from None
    for key, kind in (("model_spec", dict), ("train_spec", (dict, type(None))), ("vocab", (dict, type(None))),
                      ("progress", dict), ("position", dict), ("data", dict)):
        if not isinstance(fields[key], kind):
            raise SeqcoreError(f"{path} has damaged seqcore metadata: {key} is of type "
                               f"{type(fields[key]).__name__}, not a JSON object.")
    try:
        model_spec = ModelSpec.from_dict(fields["model_spec"])
        train = TrainSpec.from_dict(fields["train_spec"]) if fields["train_spec"] else None
    except (TypeError, ValueError, SeqcoreError) as error:
        raise SeqcoreError(f"{path} has damaged seqcore metadata: {str(error).rstrip('.')}.") from None
    params = {k: v for k, v in tensors.items() if not k.startswith((OPTIMIZER, STATE))}
    for name, value in params.items():
        if value.dtype.kind != "f":
            raise SeqcoreError(f"{path} holds {name} as {value.dtype}, not floating point; "
                               f"it was not written by seqcore.")
        if not np.all(np.isfinite(value)):
            raise SeqcoreError(f"{path} holds non-finite values in {name}; the weights are unusable.")
    num_states = sum(k.startswith(STATE) for k in tensors)
    return Checkpoint(
        model_spec=model_spec,
        params=check_params(model_spec, params),
        train_spec=train,
        vocab=fields["vocab"],
        progress=fields["progress"],
        optimizer={k[len(OPTIMIZER):]: v for k, v in tensors.items() if k.startswith(OPTIMIZER)},
        recurrent_state=tuple(tensors[f"{STATE}{i}"] for i in range(num_states)),
        position=fields["position"],
        data=fields["data"],
    )


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Delete the temp files a killed atomic write left in `folder`; returns them."""
    stale = [p for p in folder.glob(f".*{TEMP_SUFFIX}") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def checkpoint_path(checkpoint: str | Path, best: bool) -> Path:
    """A checkpoint file, or a run folder's model.safetensors (best.safetensors with best)."""
    path = Path(checkpoint)
    if path.is_dir():
        chosen = path / (BEST if best else LAST)
        if not chosen.is_file():
            what = "it is written at the first evaluation" if best else "is it a run folder?"
            raise SeqcoreError(f"The folder {path} holds no {chosen.name} ({what}).")
        return chosen
    if best:
        raise SeqcoreError(f"--best picks {BEST} in a run folder, but --checkpoint {path} is not a folder.")
    return path
