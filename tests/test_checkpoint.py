"""Checkpoints: exact round trip, atomic replacement, one-sentence errors for bad files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqcore.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from seqcore.errors import SeqcoreError
from seqcore.params import init_params
from seqcore.specs import ModelSpec, TrainSpec

SPEC = ModelSpec(cell="gru", impl="scratch", input_size=6, hidden_size=4, output_size=6, num_layers=2)


def checkpoint(seed: int = 0) -> Checkpoint:
    return Checkpoint(SPEC, init_params(SPEC, "xavier", seed), TrainSpec(lr=0.5, sampler="random"),
                      {"idx_to_token": ["<unk>", "a"]}, {"epoch": 7, "backend": "torch"})


def test_round_trip(tmp_path: Path) -> None:
    original = checkpoint()
    path = save_checkpoint(tmp_path / "m.safetensors", original)
    loaded = load_checkpoint(path)
    assert loaded.model_spec == SPEC and loaded.train_spec == original.train_spec
    assert loaded.vocab == original.vocab and loaded.progress == original.progress
    for name, value in original.params.items():
        np.testing.assert_array_equal(loaded.params[name], value)
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind


def test_failed_write_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", checkpoint(0))
    before = path.read_bytes()
    broken = Checkpoint(SPEC, {**checkpoint(1).params, "head.bias": np.zeros(99, np.float32)})
    with pytest.raises(SeqcoreError, match="head.bias"):
        save_checkpoint(path, broken)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


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
    from safetensors.numpy import save_file

    save_file({"w": np.zeros(3, np.float32)}, str(tmp_path / "w.safetensors"))
    with pytest.raises(SeqcoreError, match="not a seqcore checkpoint"):
        load_checkpoint(tmp_path / "w.safetensors")
