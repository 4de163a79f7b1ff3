"""`python -m tasks.evaluate` on bad input: one sentence, exit status 2."""
from __future__ import annotations

from pathlib import Path

from seqcore.checkpoint import Checkpoint, save_checkpoint
from seqcore.params import init_params
from seqcore.specs import ModelSpec
from tests.conftest import assert_one_sentence, python


def test_missing_checkpoint(tmp_path: Path) -> None:
    result = python("-m", "tasks.evaluate", "--checkpoint", str(tmp_path / "nope.safetensors"), "--backend", "torch")
    assert_one_sentence(result, "No checkpoint file")


def test_checkpoint_without_vocabulary(tmp_path: Path) -> None:
    spec = ModelSpec(cell="lstm", impl="concise", input_size=28, hidden_size=4, output_size=10,
                     input_kind="dense", readout="last")
    path = save_checkpoint(tmp_path / "mnist.safetensors", Checkpoint(spec, init_params(spec)))
    result = python("-m", "tasks.evaluate", "--checkpoint", str(path), "--backend", "torch")
    assert_one_sentence(result, "not a language-model checkpoint")


def test_non_positive_sizes(tmp_path: Path) -> None:
    result = python("-m", "tasks.evaluate", "--checkpoint", str(tmp_path / "m.safetensors"), "--num-steps", "0")
    assert_one_sentence(result, "must be positive")
