"""Checkpoints: one safetensors file holding the canonical weights, with the model spec,
training spec, vocabulary and progress stored as JSON in its metadata.

A single file can be replaced atomically: it is written next to its final name, flushed to
disk and renamed over it, so a crash or a NaN never leaves a half-written checkpoint and the
previous good one survives until the new one is complete. Being framework-neutral, a
checkpoint written by one backend loads on the other.
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

from .errors import SeqcoreError
from .params import check_params
from .specs import ModelSpec, TrainSpec

FORMAT = "seqcore-checkpoint-1"


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    model_spec: ModelSpec
    params: dict[str, np.ndarray]
    train_spec: Optional[TrainSpec] = None
    vocab: Optional[dict[str, Any]] = None  # Vocab.to_dict(), for token tasks
    progress: dict[str, Any] = dataclasses.field(default_factory=dict)  # epoch, metrics, backend...


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    """Write `checkpoint` to `path` atomically; returns the path."""
    path = Path(path)
    params = check_params(checkpoint.model_spec, checkpoint.params)
    metadata = {
        "format": FORMAT,
        "model_spec": json.dumps(checkpoint.model_spec.to_dict()),
        "train_spec": json.dumps(checkpoint.train_spec.to_dict() if checkpoint.train_spec else None),
        "vocab": json.dumps(checkpoint.vocab),
        "progress": json.dumps(checkpoint.progress),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp_name, 0o644)  # mkstemp makes 0600 files; a checkpoint is ordinary data
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in params.items()}, tmp_name, metadata=metadata)
        with open(tmp_name, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`, or explain in one sentence why not."""
    path = Path(path)
    if not path.is_file():
        raise SeqcoreError(f"No checkpoint file at {path}.")
    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
        params = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise SeqcoreError(f"{path} is not a readable safetensors checkpoint ({error}).") from None
    if metadata.get("format") != FORMAT:
        raise SeqcoreError(f"{path} is a safetensors file but not a seqcore checkpoint.")
    try:
        model_spec = ModelSpec.from_dict(json.loads(metadata["model_spec"]))
        train = json.loads(metadata["train_spec"])
        return Checkpoint(
            model_spec=model_spec,
            params=check_params(model_spec, params),
            train_spec=TrainSpec.from_dict(train) if train else None,
            vocab=json.loads(metadata["vocab"]),
            progress=json.loads(metadata["progress"]),
        )
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise SeqcoreError(f"{path} has damaged seqcore metadata ({error!r}).") from None
