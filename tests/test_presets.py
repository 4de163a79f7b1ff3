"""char_lm --preset d2l-0.17 / d2l-1.0: the table, its layering under the flags, and a run.

tests/test_d2l.py holds the presets against the book's own code; here nothing needs the book.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqcore.errors import SeqcoreError
from seqcore.jobs.presets import PRESETS, preset_values
from tasks.char_lm import CharLMConfig
from tasks.cli import parse_config
from tests.conftest import assert_one_sentence, python


def config(*argv: str) -> CharLMConfig:
    return parse_config(CharLMConfig, "char_lm", list(argv), "doc")


@pytest.mark.parametrize("backend, cell, impl, want", [
    # d2l 0.17: train_ch8 re-initialises MXNet blocks and scratch models with N(0, 0.01); Gluon's RNN is relu
    ("mxnet", "rnn", "concise", {"activation": "relu", "init": "normal", "hidden_size": 256, "bias": "both"}),
    ("torch", "rnn", "concise", {"activation": "tanh", "init": "uniform", "hidden_size": 256}),
    ("torch", "rnn", "scratch", {"activation": "tanh", "init": "normal", "hidden_size": 512, "bias": "input"}),
    ("mxnet", "gru", "scratch", {"gru_reset": "before", "init": "normal", "hidden_size": 256, "bias": "input"}),
    ("mxnet", "lstm", "concise", {"gru_reset": "after", "init": "normal", "activation": "tanh"}),
])
def test_the_017_table(backend: str, cell: str, impl: str, want: dict) -> None:
    values = preset_values("d2l-0.17", backend, cell, impl)
    assert {key: values[key] for key in want} == want
    assert {key: values[key] for key in ("batch_size", "num_steps", "epochs", "lr", "clip", "sampler", "max_tokens",
                                         "preprocess", "vocab_order", "train_windows")} == {
        "batch_size": 32, "num_steps": 35, "epochs": 500, "lr": 1.0, "clip": 1.0, "sampler": "d2l-sequential",
        "max_tokens": 10_000, "preprocess": "lines", "vocab_order": "frequency", "train_windows": None}


@pytest.mark.parametrize("backend, cell, impl, want", [
    ("mxnet", "rnn", "concise", {"activation": "relu", "init": "gluon", "lr": 1.0, "epochs": 100}),
    ("torch", "rnn", "concise", {"activation": "tanh", "init": "uniform", "lr": 1.0, "epochs": 100}),
    ("torch", "gru", "scratch", {"init": "normal", "gru_reset": "before", "bias": "input", "lr": 4.0, "epochs": 50}),
    ("mxnet", "lstm", "scratch", {"init": "normal", "bias": "input", "lr": 4.0, "epochs": 50}),
])
def test_the_10_table(backend: str, cell: str, impl: str, want: dict) -> None:
    values = preset_values("d2l-1.0", backend, cell, impl)
    assert {key: values[key] for key in want} == want
    assert {key: values[key] for key in ("batch_size", "num_steps", "hidden_size", "sampler", "train_windows",
                                         "val_windows", "preprocess", "vocab_order", "clip")} == {
        "batch_size": 1024, "num_steps": 32, "hidden_size": 32, "sampler": "windows", "train_windows": 10_000,
        "val_windows": 5_000, "preprocess": "text", "vocab_order": "alphabetical", "clip": 1.0}
    with pytest.raises(SeqcoreError, match="Unknown preset 'd2l-2.0'"):
        preset_values("d2l-2.0", backend, cell, impl)


def test_flags_win_over_the_preset_and_the_run_records_it() -> None:
    book = config("--preset", "d2l-0.17", "--backend", "mxnet")
    assert (book.activation, book.init, book.sampler, book.hidden_size) == ("relu", "normal", "d2l-sequential", 256)
    assert book.saved()["preset"] == "d2l-0.17" and book.train_spec().carry_state
    mine = config("--preset", "d2l-0.17", "--backend", "mxnet", "--hidden-size", "64", "--init", "uniform")
    assert (mine.hidden_size, mine.init, mine.activation) == (64, "uniform", "relu")
    scratch = config("--preset", "d2l-1.0", "--backend", "torch", "--cell", "gru", "--impl", "scratch")
    assert (scratch.lr, scratch.epochs, scratch.gru_reset, scratch.bias) == (4.0, 50, "before", "input")
    assert scratch.windows() == (10_000, 5_000) and not scratch.train_spec().carry_state
    assert config().preset is None and config().vocab_order == "frequency"  # seqcore's defaults unchanged
    assert config().sampler == "sequential" and config().bias == "both"


def test_an_older_run_keeps_its_vocabulary_order(tmp_path: Path) -> None:
    """A config.json from before the order rule existed ran with ties broken alphabetically."""
    saved = config().saved()
    del saved["vocab_order"], saved["preset"]
    (tmp_path / "config.json").write_text(json.dumps({"task": "char_lm", "config": saved}))
    assert config("--config", str(tmp_path / "config.json")).vocab_order == "frequency-alphabetical"


@pytest.mark.parametrize("argv, message", [
    (["--cell", "gru", "--activation", "relu"], "--activation relu needs --cell rnn"),
    (["--bias", "input"], "--bias input needs --impl scratch"),
    (["--train-windows", "100"], "--train-windows and --val-windows come together"),
    (["--preset", "d2l-1.0", "--backend", "torch", "--cell", "gru", "--activation", "relu"],
     "--activation relu needs --cell rnn"),
])
def test_what_does_not_fit_is_refused(argv: list[str], message: str) -> None:
    with pytest.raises(SeqcoreError, match=message):
        config(*argv)


def test_the_10_preset_trains_and_evaluates_on_its_windows(tmp_path: Path, backend_name: str) -> None:
    """A short run of d2l 1.0's configuration (fewer windows), whose checkpoint tasks.evaluate
    measures on the same validation windows, each from a zero state."""
    out = tmp_path / "run"
    python("-m", "tasks.char_lm", "--preset", "d2l-1.0", "--backend", backend_name, "--epochs", "2",
           "--train-windows", "2048", "--val-windows", "512", "--out", str(out), "--no-progress", check=True)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    run = next(r for r in records if r["kind"] == "run")
    assert json.loads((out / "config.json").read_text())["config"]["preset"] == "d2l-1.0"  # the run records it
    assert run["train"]["sampler"] == "windows" and run["num_val_tokens"] == 512 + 32
    assert run["data"]["windows"] == [2048, 512, 32] and run["data"]["vocab_order"] == "alphabetical"
    assert run["data"]["preprocess"] == "text"
    assert len([r for r in records if r["kind"] == "epoch"]) == 2  # 2 batches of 1024 an epoch
    result = python("-m", "tasks.evaluate", "--checkpoint", str(out), "--backend", backend_name, "--json", check=True)
    last = [r for r in records if r["kind"] == "epoch"][-1]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["val_ppl"] == pytest.approx(last["val_ppl"], rel=1e-6)
    assert measured["num_val_tokens"] == 512 + 32 and measured["num_steps"] == 32


def test_the_preset_names_are_refused_in_one_sentence() -> None:
    result = python("-m", "tasks.char_lm", "--preset", "d2l-2.0")
    assert_one_sentence(result, "argument --preset: invalid choice: 'd2l-2.0'")
    assert set(PRESETS) == {"d2l-0.17", "d2l-1.0"}
