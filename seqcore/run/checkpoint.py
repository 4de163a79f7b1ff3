"""Checkpoints: one safetensors file holding the canonical weights, the optimizer's state and
(at a stop inside an epoch) the carried recurrent state, with the model, training and data specs,
the vocabulary, the provenance, the resume position and the data's fingerprint as JSON metadata.

Format 3 (`seqcore-checkpoint-3`) metadata:
    model_spec, train_spec, data_spec   ModelSpec (or Seq2SeqSpec, told by its family tag 'seq2seq') /
                                        TrainSpec / seqcore.data.spec dicts (null: unknown)
    vocab                               Vocab.to_dict() of token tasks, {"source": ..., "target": ...}
                                        (two Vocab dicts) of an encoder-decoder, else null
    provenance                          who trained it how: task, backend, device, config (every
                                        setting of the run, what a resume is compared against),
                                        epoch, that epoch's figures and the data's counts
    position                            where a resume continues (seqcore.run.position)
    fingerprint                         SHA-256 of each data file the run read
Formats 1 and 2 (`progress` for provenance, `data` for fingerprint, no data spec) still load:
seqcore.run.legacy derives their data spec.

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
from safetensors.numpy import save_file

from seqcore.data.spec import DataSpec, data_spec_from_dict
from seqcore.errors import SeqcoreError
from seqcore.model.params import check_params
from seqcore.model.seq2seq import Seq2SeqSpec, spec_from_dict
from seqcore.model.spec import ModelSpec
from seqcore.run.legacy import derive_data_spec
from seqcore.run.tensors import FLOATS, checked_floats, read_file
from seqcore.train.spec import TrainSpec

FORMAT = "seqcore-checkpoint-3"
LEGACY = ("seqcore-checkpoint-1", "seqcore-checkpoint-2")  # 1: no optimizer, position or fingerprint
OPTIMIZER, STATE = "optimizer/", "state/"
TEMP_SUFFIX = ".tmp"  # `.<name>.<random>.tmp` beside the target while it is written
LAST, BEST = "model.safetensors", "best.safetensors"  # a run folder's last and best checkpoints


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    model_spec: ModelSpec | Seq2SeqSpec
    params: dict[str, np.ndarray]
    train_spec: Optional[TrainSpec] = None
    data_spec: Optional[DataSpec] = None
    vocab: Optional[dict[str, Any]] = None  # Vocab.to_dict(), for token tasks
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)  # task, backend, config, epoch...
    optimizer: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # canonical names
    recurrent_state: tuple[np.ndarray, ...] = ()  # (L*D, N, H) each, at a stop inside an epoch
    position: dict[str, Any] = dataclasses.field(default_factory=dict)  # where a resume continues
    fingerprint: dict[str, Any] = dataclasses.field(default_factory=dict)  # SHA-256 of the data files used
    format: str = FORMAT  # the format it was read from (save_checkpoint always writes FORMAT)


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint, make_folder: bool = True) -> Path:
    """Write `checkpoint` to `path` atomically; returns the path. make_folder=False: a missing
    folder is an error (a run's folder deleted while it trains is never re-created)."""
    path = Path(path)
    params = check_params(checkpoint.model_spec, checkpoint.params)
    tensors = {**params, **{OPTIMIZER + k: v for k, v in checkpoint.optimizer.items()},
               **{f"{STATE}{i}": v for i, v in enumerate(checkpoint.recurrent_state)}}
    metadata = {
        "format": FORMAT,
        "model_spec": json.dumps(checkpoint.model_spec.to_dict()),
        "train_spec": json.dumps(checkpoint.train_spec.to_dict() if checkpoint.train_spec else None),
        "data_spec": json.dumps(checkpoint.data_spec.to_dict() if checkpoint.data_spec else None),
        "vocab": json.dumps(checkpoint.vocab),
        "provenance": json.dumps(checkpoint.provenance),
        "position": json.dumps(checkpoint.position),
        "fingerprint": json.dumps(checkpoint.fingerprint),
    }
    atomic_write(path, lambda tmp: save_file(
        {k: np.ascontiguousarray(v) for k, v in tensors.items()}, tmp, metadata=metadata), make_folder)
    return path


def atomic_write(path: Path, write, make_folder: bool = True) -> None:
    """Call `write(temp_path)`, flush it to disk and rename it over `path`, mode 0644."""
    if make_folder:
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


# metadata key -> (the format-3 name it is read into, required, the JSON types it may hold)
_KEYS = {"model_spec": ("model_spec", True, dict), "train_spec": ("train_spec", True, (dict, type(None))),
         "data_spec": ("data_spec", False, (dict, type(None))), "vocab": ("vocab", True, (dict, type(None))),
         "provenance": ("provenance", True, dict), "progress": ("provenance", True, dict),
         "position": ("position", False, dict), "fingerprint": ("fingerprint", False, dict),
         "data": ("fingerprint", False, dict)}
_NAMES = {FORMAT: ("model_spec", "train_spec", "data_spec", "vocab", "provenance", "position", "fingerprint"),
          **{old: ("model_spec", "train_spec", "vocab", "progress", "position", "data") for old in LEGACY}}


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint` (or an older format), or explain in one
    sentence why not.

    Refused: a file that is not a seqcore checkpoint, metadata with missing keys or wrong types,
    weights that are not floating point, do not fit the spec, or are not finite once in float32,
    and a recurrent state with a part missing or of the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise SeqcoreError(f"No checkpoint file at {path}.")
    metadata, tensors = read_file(path)
    fmt = metadata.get("format")
    if fmt not in _NAMES:
        raise SeqcoreError(f"{path} is a safetensors file but not a seqcore checkpoint.")
    fields = _fields(path, metadata, _NAMES[fmt])
    try:
        model_spec = spec_from_dict(fields["model_spec"])  # a Seq2SeqSpec by its family tag
        train = TrainSpec.from_dict(fields["train_spec"]) if fields["train_spec"] else None
        data = data_spec_from_dict(fields["data_spec"]) if fields.get("data_spec") else None
    except (TypeError, ValueError, SeqcoreError) as error:
        raise SeqcoreError(f"{path} has damaged seqcore metadata: {str(error).rstrip('.')}.") from None
    if fmt in LEGACY:
        data = derive_data_spec(path, fmt, fields["provenance"], train)
    params = {k: checked_floats(path, k, *v, what="weights") for k, v in tensors.items()
              if not k.startswith((OPTIMIZER, STATE))}
    return Checkpoint(
        model_spec=model_spec, params=check_params(model_spec, params), train_spec=train, data_spec=data,
        vocab=fields["vocab"], provenance=fields["provenance"], optimizer=_optimizer(path, tensors),
        recurrent_state=_state(path, model_spec, tensors), position=fields.get("position", {}),
        fingerprint=fields.get("fingerprint", {}), format=fmt)


def _fields(path: Path, metadata: dict[str, str], names: tuple[str, ...]) -> dict[str, Any]:
    """The JSON metadata entries of one format under their format-3 names, each of its type."""
    fields: dict[str, Any] = {}
    for key in names:
        target, required, kinds = _KEYS[key]
        try:
            value = json.loads(metadata[key]) if key in metadata else (None if target == "data_spec" else {})
        except json.JSONDecodeError as error:
            raise SeqcoreError(f"{path} has damaged seqcore metadata: not JSON ({error}).") from None
        if required and key not in metadata:
            raise SeqcoreError(f"{path} has damaged seqcore metadata: the key '{key}' is missing.")
        if not isinstance(value, kinds):
            raise SeqcoreError(f"{path} has damaged seqcore metadata: {key} is of type "
                               f"{type(value).__name__}, not a JSON object.")
        fields[target] = value
    return fields


def _optimizer(path: Path, tensors: dict[str, tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """optimizer/<name>: moments as checked float32, counters (adam.step) as int64."""
    found = {}
    for key, (dtype, value) in tensors.items():
        if key.startswith(OPTIMIZER):
            name = key[len(OPTIMIZER):]
            found[name] = checked_floats(path, key, dtype, value, "optimizer state") if dtype in FLOATS else value
            if value.dtype == bool:
                raise SeqcoreError(f"{path} holds {key} as bool, which no optimizer keeps; it is damaged.")
    return found


def _state(path: Path, spec: ModelSpec | Seq2SeqSpec, tensors: dict[str, tuple[str, np.ndarray]]
           ) -> tuple[np.ndarray, ...]:
    """state/0 .. state/{n-1}: h (and c for an LSTM), (L*D, N, H) float32 each, or none at all
    (an encoder-decoder's batches begin afresh: D is 1 and no state is carried)."""
    names = sorted((k for k in tensors if k.startswith(STATE)), key=lambda k: (len(k), k))
    if not names:
        return ()
    wanted = [f"{STATE}{i}" for i in range(spec.num_states)]
    if names != wanted:
        raise SeqcoreError(f"{path} has a damaged recurrent state: it holds {', '.join(names)}, where a "
                           f"{spec.cell.value} model carries {', '.join(wanted)}; resume from an earlier copy "
                           f"or start again with --overwrite.")
    parts = tuple(checked_floats(path, name, *tensors[name], what="recurrent state") for name in names)
    rows = {part.shape[1] if part.ndim == 3 else None for part in parts}
    expected = (spec.num_layers * getattr(spec, "num_directions", 1), spec.hidden_size)
    if any(part.ndim != 3 or (part.shape[0], part.shape[2]) != expected for part in parts) or len(rows) != 1:
        shapes = ", ".join(str(part.shape) for part in parts)
        raise SeqcoreError(f"{path} has a damaged recurrent state: its parts are {shapes}, not ({expected[0]}, N, "
                           f"{expected[1]}) each; resume from an earlier copy or start again with --overwrite.")
    return parts


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
