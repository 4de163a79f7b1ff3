"""Checkpoints (format 3): exact round trip of weights, optimizer state, recurrent state, the data
spec, provenance, resume position and data fingerprints; format-1 and format-2 files still load
(their data spec derived from their progress fields); every dtype is cast to float32 and then
checked, or refused in one sentence; a damaged recurrent state is refused; atomic replacement and
the clean-up of an interrupted write; one-sentence errors for bad files."""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from seqcore.data.spec import CorpusSpec, HelloSpec, MnistSpec, SineSpec
from seqcore.errors import SeqcoreError
from seqcore.model.params import init_params
from seqcore.model.spec import ModelSpec
from seqcore.run.checkpoint import (
    FORMAT,
    Checkpoint,
    atomic_write,
    load_checkpoint,
    remove_stale_temp_files,
    save_checkpoint,
)
from seqcore.train.spec import TrainSpec
from tests.conftest import python

SPEC = ModelSpec(cell="gru", impl="scratch", input_size=6, hidden_size=4, output_size=6, num_layers=2)
LSTM = ModelSpec(cell="lstm", impl="concise", input_size=5, hidden_size=3, output_size=5, num_layers=2)


def checkpoint(seed: int = 0) -> Checkpoint:
    return Checkpoint(SPEC, init_params(SPEC, "xavier", seed), TrainSpec(lr=0.5, sampler="random"),
                      vocab={"idx_to_token": ["<unk>", "a"]}, provenance={"epoch": 7, "backend": "torch"})


def full_checkpoint() -> Checkpoint:
    """Everything format 3 holds: Adam's moments, an LSTM's (h, c) at a stop inside an epoch, a
    resume position with a Generator's 128-bit state, the data spec, the corpus fingerprint."""
    params = init_params(LSTM, "uniform", 3)
    rng = np.random.default_rng(5)
    optimizer = {**{f"m.{k}": rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()},
                 **{f"v.{k}": rng.random(v.shape).astype(np.float32) for k, v in params.items()},
                 "step": np.array([12], dtype=np.int64)}
    state = (rng.standard_normal((2, 4, 3)).astype(np.float32), rng.standard_normal((2, 4, 3)).astype(np.float32))
    generator = np.random.default_rng(11)
    generator.integers(0, 10, size=3)  # not the seed's fresh state
    position = {"epochs_done": 3, "steps_done": 17, "epoch_rng": generator.bit_generator.state,
                "best": 4.25, "best_epoch": 2, "stats": None}
    return Checkpoint(LSTM, params, TrainSpec(lr=0.01, optimizer="adam"),
                      CorpusSpec(token="char", max_tokens=None, val_fraction=0.1),
                      {"idx_to_token": ["<unk>", " ", "a", "b", "c"]},
                      {"epoch": 3, "backend": "mxnet", "task": "char_lm", "config": {"lr": 0.01}},
                      optimizer, state, position, {"corpus_sha256": "ab" * 32})


def test_round_trip(tmp_path: Path) -> None:
    original = checkpoint()
    path = save_checkpoint(tmp_path / "m.safetensors", original)
    loaded = load_checkpoint(path)
    assert loaded.model_spec == SPEC and loaded.train_spec == original.train_spec
    assert loaded.vocab == original.vocab and loaded.provenance == original.provenance
    for name, value in original.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)
    assert loaded.optimizer == {} and loaded.recurrent_state == () and loaded.position == {}
    assert loaded.fingerprint == {} and loaded.data_spec is None and loaded.format == FORMAT
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    with safe_open(str(path), framework="np") as handle:
        assert handle.metadata()["format"] == FORMAT == "seqcore-checkpoint-3"


def test_round_trip_of_everything_format_3_holds(tmp_path: Path) -> None:
    original = full_checkpoint()
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m.safetensors", original))
    assert loaded.model_spec == LSTM and loaded.train_spec == original.train_spec
    assert loaded.data_spec == original.data_spec and isinstance(loaded.data_spec, CorpusSpec)
    assert loaded.vocab == original.vocab and loaded.provenance == original.provenance
    assert loaded.position == original.position and loaded.fingerprint == original.fingerprint
    for name, value in original.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)
    assert set(loaded.optimizer) == set(original.optimizer)
    for name, value in original.optimizer.items():
        assert loaded.optimizer[name].dtype == value.dtype
        np.testing.assert_array_equal(loaded.optimizer[name], value)
    assert len(loaded.recurrent_state) == 2
    for saved, value in zip(loaded.recurrent_state, original.recurrent_state):
        np.testing.assert_array_equal(saved, value)
    # The Generator continues exactly where it stopped.
    restored, reference = np.random.default_rng(), np.random.default_rng(11)
    reference.integers(0, 10, size=3)
    restored.bit_generator.state = loaded.position["epoch_rng"]
    np.testing.assert_array_equal(restored.random(5), reference.random(5))


def test_format_1_files_still_load(tmp_path: Path) -> None:
    """Format 1: weights only, no position or data metadata; its progress becomes the provenance."""
    original = checkpoint()
    path = tmp_path / "old.safetensors"
    progress = {"epoch": 7, "backend": "torch"}
    save_file(dict(original.params), str(path), metadata={
        "format": "seqcore-checkpoint-1", "model_spec": json.dumps(SPEC.to_dict()),
        "train_spec": json.dumps(original.train_spec.to_dict()), "vocab": json.dumps(original.vocab),
        "progress": json.dumps(progress)})
    loaded = load_checkpoint(path)
    assert loaded.model_spec == SPEC and loaded.provenance == progress and loaded.vocab == original.vocab
    assert loaded.optimizer == {} and loaded.recurrent_state == () and loaded.position == {}
    assert loaded.fingerprint == {} and loaded.data_spec is None and loaded.format == "seqcore-checkpoint-1"
    for name, value in original.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)


LEGACY_PROGRESS = {
    "char_lm": ({"corpus": "timemachine", "corpus_hash": None, "token": "word", "max_tokens": 600,
                 "val_fraction": 0.2}, CorpusSpec(token="word", max_tokens=600, val_fraction=0.2,
                                                  vocab_order="frequency-alphabetical")),  # ties as then
    "mnist_rows": ({"dataset": "mnist", "data_dir": "/data/mnist", "num_train": 64, "num_test": 32},
                   MnistSpec(folder="/data/mnist", limit_train=64, limit_test=32)),
    "sine": ({"mode": "sin2cos", "phase": "fixed", "iterations": 100},
             SineSpec(mode="sin2cos", iterations=100, num_steps=35, batch_size=32)),
    "hello": ({"variant": "onehot", "source": "hello", "target": "ohlol", "chars": "ehlo"}, HelloSpec()),
    "imported": ({"backend": "torch", "imported_from": "/x.pt", "imported_format": "torch"}, None),
}


@pytest.mark.parametrize("task", list(LEGACY_PROGRESS))
def test_format_2_files_load_with_the_data_spec_their_progress_describes(tmp_path: Path, task: str) -> None:
    progress, expected = LEGACY_PROGRESS[task]
    original = checkpoint()
    path = tmp_path / "old.safetensors"
    save_file(dict(original.params), str(path), metadata={
        "format": "seqcore-checkpoint-2", "model_spec": json.dumps(SPEC.to_dict()),
        "train_spec": json.dumps(TrainSpec().to_dict()), "vocab": "null", "progress": json.dumps(progress),
        "position": "{}", "data": json.dumps({"corpus_sha256": "cd" * 32})})
    loaded = load_checkpoint(path)
    assert loaded.data_spec == expected and loaded.provenance == progress
    assert loaded.fingerprint == {"corpus_sha256": "cd" * 32} and loaded.format == "seqcore-checkpoint-2"


def test_a_format_2_file_with_damaged_progress_is_refused_naming_its_format(tmp_path: Path) -> None:
    path = tmp_path / "old.safetensors"
    save_file(dict(checkpoint().params), str(path), metadata={
        "format": "seqcore-checkpoint-2", "model_spec": json.dumps(SPEC.to_dict()), "train_spec": "null",
        "vocab": "null", "progress": json.dumps({"corpus": "timemachine", "token": "char", "max_tokens": 0,
                                                 "val_fraction": 0.1})})
    with pytest.raises(SeqcoreError, match=re.escape(f"{path} (seqcore-checkpoint-2) has damaged progress "
                                                     f"metadata: max_tokens is 0 (int)")):
        load_checkpoint(path)


# NumPy dtypes written as they are; bfloat16 is written by hand (write_bfloat16)
FLOAT_DTYPES = {"float16": np.float16, "float64": np.float64}


@pytest.mark.parametrize("dtype", ["float16", "float64", "bfloat16"])
def test_other_float_dtypes_are_cast_to_float32(tmp_path: Path, dtype: str) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", full_checkpoint())
    weight = load_checkpoint(path).params["head.weight"]
    if dtype == "bfloat16":
        stored = (weight.view(np.uint32) >> 16).astype(np.uint16)  # the upper half of each float32
        expected = (stored.astype(np.uint32) << 16).view(np.float32)
        write_bfloat16(path, "head.weight", stored)
    else:
        stored = weight.astype(FLOAT_DTYPES[dtype])
        expected = stored.astype(np.float32)
        rewrite(path, tensors={"head.weight": stored})
    loaded = load_checkpoint(path)
    assert loaded.params["head.weight"].dtype == np.float32
    np.testing.assert_array_equal(loaded.params["head.weight"], expected)
    assert np.abs(loaded.params["head.weight"] - weight).max() <= 1e-2 * np.abs(weight).max()


def write_bfloat16(path: Path, name: str, halves: np.ndarray) -> None:
    """Replace tensor `name` of the safetensors file at `path` by bfloat16 `halves` (uint16 bit
    patterns): NumPy has no bfloat16, so the file is written by hand (8-byte header length, JSON
    header, data), as any other tool would write it."""
    import struct

    with safe_open(str(path), framework="np") as handle:
        meta = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys() if k != name}
    header, blobs, offset = {"__metadata__": meta}, [], 0
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
    for key, value in [*tensors.items(), (name, halves)]:
        data = np.ascontiguousarray(value).tobytes()
        header[key] = {"dtype": "BF16" if key == name else dtypes[value.dtype], "shape": list(value.shape),
                       "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


@pytest.mark.parametrize("change, message", [
    ({"head.weight": np.full((5, 3), 1e39)}, "non-finite values in head.weight once cast from float64 to float32"),
    ({"head.bias": np.array([0, 1e300, 0, 0, 0])}, "non-finite values in head.bias once cast from float64"),
    ({"head.weight": np.full((5, 3), np.inf, np.float16)}, "non-finite values in head.weight once cast from float16"),
    ({"head.weight": np.ones((5, 3), np.int64)}, "head.weight as int64, not floating point"),
    ({"head.weight": np.ones((5, 3), np.uint8)}, "head.weight as uint8, not floating point"),
    ({"head.bias": np.ones(5, bool)}, "head.bias as bool, not floating point"),
    ({"optimizer/m.head.bias": np.full(5, 1e39)}, "non-finite values in optimizer/m.head.bias once cast"),
    ({"state/0": np.full((2, 4, 3), 1e39)}, "non-finite values in state/0 once cast from float64"),
    ({"state/1": None}, "damaged recurrent state: it holds state/0, where a lstm model carries state/0, state/1"),
    ({"state/0": None}, "damaged recurrent state: it holds state/1, where"),
    ({"state/2": np.zeros((2, 4, 3), np.float32)}, "it holds state/0, state/1, state/2, where"),
    ({"state/1": np.zeros((2, 5, 3), np.float32)}, "its parts are (2, 4, 3), (2, 5, 3), not (2, N, 3) each"),
    ({"state/0": np.zeros((2, 4), np.float32)}, "its parts are (2, 4), (2, 4, 3)"),
])
def test_tensors_of_every_dtype_and_state_are_checked_in_one_sentence(tmp_path: Path, change: dict,
                                                                       message: str) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", full_checkpoint())
    tensors = load_file(str(path))
    for name, value in change.items():
        if value is None:
            del tensors[name]
        else:
            tensors[name] = value
    with safe_open(str(path), framework="np") as handle:
        meta = handle.metadata()
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(SeqcoreError, match=re.escape(message)) as error:
        load_checkpoint(path)
    assert str(error.value).startswith(str(path))


def test_a_float64_state_is_read_as_float32(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", full_checkpoint())
    state = full_checkpoint().recurrent_state
    rewrite(path, tensors={"state/0": state[0].astype(np.float64)})
    loaded = load_checkpoint(path)
    assert [part.dtype for part in loaded.recurrent_state] == [np.float32, np.float32]
    np.testing.assert_array_equal(loaded.recurrent_state[0], state[0])


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", checkpoint(0))
    before = path.read_bytes()
    broken = Checkpoint(SPEC, {**checkpoint(1).params, "head.bias": np.zeros(99, np.float32)})
    with pytest.raises(SeqcoreError, match="head.bias"):
        save_checkpoint(path, broken)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_an_interrupted_write_leaves_a_temp_file_that_is_removed(tmp_path: Path) -> None:
    """A process killed inside atomic_write (no except clause runs) leaves its temp file beside
    the target, never a damaged target; remove_stale_temp_files deletes only such files."""
    path = save_checkpoint(tmp_path / "m.safetensors", checkpoint(0))
    before = path.read_bytes()
    kept = [tmp_path / ".seqcore.lock", tmp_path / "notes.tmp", tmp_path / "metrics.jsonl"]
    for other in kept:
        other.write_text("x")
    script = ("import os, sys\nfrom pathlib import Path\nfrom seqcore.run.checkpoint import atomic_write\n"
              "def write(tmp):\n    Path(tmp).write_bytes(b'half a checkpoint')\n    os._exit(9)\n"
              "atomic_write(Path(sys.argv[1]), write)\n")
    result = python("-c", script, str(path))
    assert result.returncode == 9, result.stderr
    stale = sorted(tmp_path.glob(".m.safetensors.*.tmp"))
    assert len(stale) == 1 and stale[0].read_bytes() == b"half a checkpoint"
    assert path.read_bytes() == before and load_checkpoint(path).provenance == checkpoint(0).provenance
    assert remove_stale_temp_files(tmp_path) == stale
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.safetensors", *(p.name for p in kept)])
    assert remove_stale_temp_files(tmp_path) == []


def test_atomic_write_removes_its_temp_file_on_an_exception(tmp_path: Path) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "m.safetensors", write)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, message", [
    (None, "No checkpoint file"),
    (b"", "not a readable safetensors"),
    (b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage", "not a readable safetensors"),
])
def test_bad_files(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "m.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SeqcoreError, match=message):
        load_checkpoint(path)


def test_plain_safetensors_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(SeqcoreError, match="not a seqcore checkpoint"):
        load_checkpoint(tmp_path / "w.safetensors")


def rewrite(path: Path, tensors=None, **metadata) -> Path:
    """The checkpoint at `path` with some tensors and metadata entries replaced (None: removed)."""
    with safe_open(str(path), framework="np") as handle:
        meta = dict(handle.metadata())
    arrays = {**load_file(str(path)), **(tensors or {})}
    for key, value in metadata.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    save_file(arrays, str(path), metadata=meta)
    return path


@pytest.mark.parametrize("change, message", [
    ({"tensors": {"head.weight": np.full((6, 4), np.nan, np.float32)}}, "non-finite values in head.weight"),
    ({"tensors": {"head.bias": np.array([1, np.inf, 0, 0, 0, 0], np.float32)}}, "non-finite values in head.bias"),
    ({"tensors": {"head.weight": np.ones((6, 4), np.int32)}}, "head.weight as int32, not floating point"),
    ({"tensors": {"head.bias": np.ones(6, bool)}}, "not floating point"),
    ({"tensors": {"head.bias": np.zeros(7, np.float32)}}, "head.bias has shape (7,)"),
    ({"model_spec": None}, "the key 'model_spec' is missing"),
    ({"provenance": None}, "the key 'provenance' is missing"),
    ({"vocab": "{not json"}, "not JSON"),
    ({"provenance": "[1, 2]"}, "provenance is of type list, not a JSON object"),
    ({"fingerprint": "\"abc\""}, "fingerprint is of type str, not a JSON object"),
    ({"data_spec": "[1]"}, "data_spec is of type list, not a JSON object"),
    ({"data_spec": json.dumps({"kind": "corpus", "token": "byte"})}, "token must be 'char' or 'word', got 'byte'"),
    ({"data_spec": json.dumps({"kind": "video"})}, "Unknown data kind 'video'"),
    ({"position": "3"}, "position is of type int, not a JSON object"),
    ({"vocab": "7"}, "vocab is of type int, not a JSON object"),
    ({"model_spec": json.dumps({**SPEC.to_dict(), "cell": "transformer"})}, "Unknown cell 'transformer'"),
    ({"model_spec": json.dumps({**SPEC.to_dict(), "colour": "red"})}, "Unknown ModelSpec field(s): colour"),
    ({"model_spec": json.dumps({k: v for k, v in SPEC.to_dict().items() if k != "hidden_size"})},
     "damaged seqcore metadata: ModelSpec.__init__() missing 1 required positional argument: 'hidden_size'."),
    ({"format": "seqcore-checkpoint-9"}, "not a seqcore checkpoint"),
])
def test_damaged_checkpoints_are_refused(tmp_path: Path, change: dict, message: str) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", checkpoint())
    rewrite(path, **change)
    with pytest.raises(SeqcoreError, match=re.escape(message)) as error:
        load_checkpoint(path)
    if not message.startswith(("head.bias has shape", "Unknown")):  # those come from the specs' own checks
        assert str(path) in str(error.value)


def test_saving_keeps_the_mode_of_an_ordinary_file(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", checkpoint(0))
    save_checkpoint(path, checkpoint(1))  # replaced over an existing file
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    np.testing.assert_array_equal(load_checkpoint(path).params["head.bias"], checkpoint(1).params["head.bias"])
