"""Every entry point checks its own options when they are made, in-process and before a framework
loads: each task's config from Python (`run(Config(...))`), from a `--config` file and from a
resumed run's saved config, and every command's `main(argv)` (the tasks' and the tools'), with
one sentence that names the flag. Nothing here trains or loads MXNet or PyTorch (checked after
every test), so the whole file takes seconds.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
import pytest

from seqcore.errors import ConfigError, SeqcoreError
from seqcore.jobs.evaluate import evaluate_checkpoint, measured_sizes
from seqcore.jobs.lm import validation_sizes
from seqcore.model.spec import Cell
from tasks import benchmark, char_lm, compare, convert, crosscheck, evaluate, hello, launch, mnist_rows, sine
from tasks.cli import exit_code, parse_config

TASKS = {"char_lm": (char_lm, char_lm.CharLMConfig), "mnist_rows": (mnist_rows, mnist_rows.MnistConfig),
         "sine": (sine, sine.SineConfig), "hello": (hello, hello.HelloConfig)}


@pytest.fixture(autouse=True)
def no_framework_loaded():
    yield
    loaded = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "mxnet"))
    assert not loaded, f"a refusal loaded a framework: {loaded[:3]}"


# -- the Python API: run(Config(...)) ------------------------------------------------------------

# (task, fields, fragment of the ConfigError's sentence)
REFUSED = [
    # the audit's examples
    ("char_lm", {"prefixes": "time"}, "--prefix takes a list of values, got the single text 'time' "
                                      "(one value per character, if read as a list); give a list, e.g. ['time']."),
    ("mnist_rows", {"limit_train": 1.5}, "--limit-train must be a whole number, got 1.5."),
    ("char_lm", {"out": 123}, "--out must be text, got 123."),
    ("char_lm", {"corpus": 5}, "--corpus must be text, got 5."),
    ("char_lm", {"num_preds": 2.5}, "--num-preds must be a whole number, got 2.5."),
    ("char_lm", {"span": 1.5}, "--span must be a whole number, got 1.5."),
    ("char_lm", {"checkpoint_every": 0.5}, "--checkpoint-every must be a whole number, got 0.5."),
    ("char_lm", {"val_fraction": 0}, "--val-fraction 0 leaves no text to validate on"),
    ("char_lm", {"val_fraction": 0.0}, "give a fraction in (0, 1), e.g. 0.1"),
    ("char_lm", {"activation": "relu", "cell": "gru"}, "--activation relu needs --cell rnn (the GRU and the LSTM "
                                                       "have fixed nonlinearities), got --cell gru."),
    ("mnist_rows", {"activation": "relu"}, "--activation relu needs --cell rnn"),  # seed000 is an LSTM
    ("sine", {"activation": "relu"}, "got --cell lstm"),
    ("hello", {"activation": "relu", "cell": "lstm"}, "--activation relu needs --cell rnn"),
    # whole numbers: no bools, no floats (not even 2.0), no text, no None where a value is needed
    ("char_lm", {"hidden_size": True}, "--hidden-size must be a whole number, got True."),
    ("char_lm", {"hidden_size": 16.0}, "--hidden-size must be a whole number, got 16.0."),
    ("char_lm", {"hidden_size": "16"}, "--hidden-size must be a whole number, got '16'."),
    ("char_lm", {"hidden_size": None}, "--hidden-size must be a whole number, got None."),
    ("char_lm", {"hidden_size": np.float32(16)}, "--hidden-size must be a whole number, got 16.0 (float32)."),
    ("char_lm", {"epochs": [3]}, "--epochs must be a whole number, got [3] (list)."),
    ("sine", {"gen_steps": 1.5}, "--gen-steps must be a whole number, got 1.5."),
    ("hello", {"seed": -1}, "--seed must be zero or more, got -1."),
    ("mnist_rows", {"limit_test": -3}, "--limit-test must be zero or more, got -3."),
    ("char_lm", {"batch_size": 0}, "--batch-size must be a positive number, got 0."),
    # numbers: finite, in range, ints accepted, text and bools refused
    ("char_lm", {"lr": "1"}, "--lr must be a number, got '1'."),
    ("char_lm", {"lr": float("inf")}, "--lr must be a positive number, got inf."),
    ("char_lm", {"lr": False}, "--lr must be a number, got False."),
    ("char_lm", {"dropout": 1}, "--dropout must be a number in [0, 1), got 1.0."),
    ("char_lm", {"temperature": float("nan")}, "--temperature must be zero or more, got nan."),
    ("mnist_rows", {"clip": -0.5}, "--clip must be zero or more, got -0.5."),
    ("char_lm", {"val_fraction": 1}, "--val-fraction must be a number in (0, 1), got 1.0."),
    # text and choices
    ("char_lm", {"cell": 5}, "--cell must be one of rnn, gru, lstm, got 5."),
    ("char_lm", {"cell": ["rnn"]}, "--cell must be one of rnn, gru, lstm, got ['rnn']."),
    ("char_lm", {"backend": "jax"}, "--backend must be one of mxnet, torch, got 'jax'."),
    ("char_lm", {"device": "tpu"}, "--device must be one of cpu, gpu, auto, got 'tpu'."),
    ("char_lm", {"out": ""}, "--out must be non-empty text, got ''."),
    ("char_lm", {"corpus_hash": b"sha256:00"}, "--corpus-hash must be text, got b'sha256:00' (bytes)."),
    ("hello", {"source": "   "}, "--source must be non-empty text"),
    ("mnist_rows", {"preset": 7}, "--preset must be one of seed000, seed003, best, got 7."),
    ("mnist_rows", {"preset": ["best"]}, "--preset must be one of seed000, seed003, best, got ['best']."),
    ("sine", {"mode": None}, "--mode must be one of sin2cos, next, got None."),
    ("hello", {"input": "emb"}, "--input must be one of onehot, embedding, got 'emb'."),
    # lists of text
    ("char_lm", {"prefixes": []}, "--prefix needs at least one value, got none."),
    ("char_lm", {"prefixes": ("time", "")}, "each --prefix must be non-empty text, got ''."),
    ("char_lm", {"prefixes": ("time", 7)}, "each --prefix must be text, got 7."),
    ("char_lm", {"prefixes": {"time"}}, "--prefix takes a list of values, got {'time'} (set)."),
    # flags
    ("char_lm", {"progress": "no"}, "progress (--no-progress) must be true or false, got 'no'."),
    ("char_lm", {"bidirectional": 1}, "--bidirectional must be true or false, got 1."),
    ("char_lm", {"resume": "yes", "out": "x"}, "--resume must be true or false, got 'yes'."),
    # combinations
    ("char_lm", {"resume": True}, "--resume needs --out, the folder of the run to continue."),
    ("char_lm", {"resume": True, "overwrite": True, "out": "x"}, "--resume and --overwrite exclude each other"),
    ("char_lm", {"compile": True, "backend": "mxnet", "impl": "scratch"}, "--compile is PyTorch's torch.compile"),
    ("char_lm", {"embed_size": 8}, "--embed-size is only used with --input embedding."),
    ("char_lm", {"bidirectional": True}, "--bidirectional does not fit a language model"),
    ("mnist_rows", {"dataset": "idx"}, "--dataset idx needs --data-dir"),
    ("sine", {"mode": "next", "bidirectional": True}, "--bidirectional needs --mode sin2cos"),
    ("hello", {"gru_reset": "before"}, "--gru-reset before needs --cell gru --impl scratch"),
]


@pytest.mark.parametrize("task, fields, fragment", REFUSED,
                         ids=[f"{task}-{'-'.join(fields)}-{index}" for index, (task, fields, _) in enumerate(REFUSED)])
def test_the_python_api_refuses_in_one_sentence(task: str, fields: dict, fragment: str) -> None:
    module, config_class = TASKS[task]
    given = {"backend": "torch", **fields}
    with pytest.raises(ConfigError) as refused:
        module.run(config_class(**given))
    assert fragment in str(refused.value)
    assert isinstance(refused.value, ValueError) and isinstance(refused.value, SeqcoreError)
    assert str(refused.value).endswith("."), "one complete sentence"


def test_numpy_values_are_accepted_and_stored_as_python_ones() -> None:
    config = char_lm.CharLMConfig(backend="torch", hidden_size=np.int64(16), lr=np.float32(0.5), epochs=np.int32(3),
                                  dropout=0, bidirectional=np.bool_(False), prefixes=["the time", "a"],
                                  cell=Cell.GRU)
    assert (config.hidden_size, config.epochs, config.lr, config.dropout) == (16, 3, 0.5, 0.0)
    assert type(config.hidden_size) is int and type(config.epochs) is int and type(config.lr) is float
    assert type(config.dropout) is float and config.bidirectional is False
    assert config.prefixes == ("the time", "a") and config.cell == "gru" and type(config.cell) is str
    assert json.loads(json.dumps(config.saved()))["hidden_size"] == 16  # what config.json stores


def test_the_activation_is_explicit_and_reaches_the_rnn_only() -> None:
    assert char_lm.CharLMConfig(backend="torch").saved()["activation"] == "tanh"  # the config says which ran
    relu = hello.HelloConfig(backend="torch", activation="relu")
    assert relu.model_spec(4).activation.value == "relu"
    every = sine.SineConfig(backend="torch", cell="all", activation="relu")  # --cell all: the RNN alone
    assert [every.model_spec(cell).activation.value for cell in every.cells()] == ["relu", "tanh", "tanh"]
    rows = mnist_rows.MnistConfig(backend="torch", preset="seed003", activation="relu")  # seed003: an RNN
    assert rows.model_spec(mnist_rows.mnist.Shape(28, 28, 10)).activation.value == "relu"


def test_a_broken_matplotlib_backend_is_refused_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    import matplotlib  # noqa: F401  (imported before the variable is broken, as in a long-lived process)

    monkeypatch.setenv("MPLBACKEND", "nonsense")
    with pytest.raises(ConfigError, match="MPLBACKEND='nonsense' is not a matplotlib backend"):
        char_lm.CharLMConfig(backend="torch")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    char_lm.CharLMConfig(backend="torch")


# -- config files and resumed runs: the same checks on saved values ------------------------------

SAVED = [
    ({"prefixes": "time"}, "--prefix takes a list of values"),
    ({"span": 1.5}, "--span must be a whole number, got 1.5."),
    ({"checkpoint_every": 0.5}, "--checkpoint-every must be a whole number, got 0.5."),
    ({"num_preds": 2.5}, "--num-preds must be a whole number, got 2.5."),
    ({"corpus": 5}, "--corpus must be text, got 5."),
    ({"hidden_size": "big"}, "--hidden-size must be a whole number, got 'big'."),
    ({"lr": None}, "--lr must be a number, got None."),
    ({"tensorboard": "false"}, "--tensorboard must be true or false, got 'false'."),
    ({"val_fraction": 0}, "--val-fraction 0 leaves no text"),
]


def _config_file(folder: Path, fields: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"task": "char_lm", "config": {"backend": "torch", **fields}}))
    return folder / "config.json"


@pytest.mark.parametrize("fields, fragment", SAVED, ids=[next(iter(f)) for f, _ in SAVED])
def test_a_config_file_meets_the_same_checks(tmp_path: Path, fields: dict, fragment: str) -> None:
    path = _config_file(tmp_path, fields)
    with pytest.raises(ConfigError) as refused:
        parse_config(char_lm.CharLMConfig, "char_lm", ["--config", str(path)], char_lm.__doc__)
    assert fragment in str(refused.value)


@pytest.mark.parametrize("fields, fragment", SAVED, ids=[next(iter(f)) for f, _ in SAVED])
def test_a_resumed_runs_saved_config_meets_the_same_checks(tmp_path: Path, fields: dict, fragment: str) -> None:
    _config_file(tmp_path / "run", fields)
    with pytest.raises(ConfigError) as refused:
        parse_config(char_lm.CharLMConfig, "char_lm", ["--out", str(tmp_path / "run"), "--resume"], char_lm.__doc__)
    assert fragment in str(refused.value)


def test_a_saved_list_is_read_back_as_the_tuple_it_was(tmp_path: Path) -> None:
    path = _config_file(tmp_path, {"prefixes": ["time", "the"], "hidden_size": 8})
    config = parse_config(char_lm.CharLMConfig, "char_lm", ["--config", str(path)], char_lm.__doc__)
    assert config.prefixes == ("time", "the") and config.hidden_size == 8


# -- every command's main(argv), in-process: exit status and one sentence ------------------------

COMMANDS: dict[str, Callable] = {"char_lm": char_lm.main, "mnist_rows": mnist_rows.main, "sine": sine.main,
                                 "hello": hello.main, "evaluate": evaluate.main, "convert": convert.main,
                                 "compare": compare.main, "benchmark": benchmark.main, "launch": launch.main,
                                 "crosscheck": crosscheck.main}

# (command, argv, fragment of the one error line); {tmp} is the test's folder
MAIN_REFUSED = [
    ("char_lm", ["--num-preds", "2.5"], "argument --num-preds: invalid int value: '2.5'"),
    ("char_lm", ["--activation", "relu", "--cell", "lstm"], "--activation relu needs --cell rnn"),
    ("char_lm", ["--activation", "sigmoid"], "argument --activation: invalid choice: 'sigmoid'"),
    ("char_lm", ["--val-fraction", "0"], "--val-fraction 0 leaves no text to validate on"),
    ("char_lm", ["--prefix", "time", "--prefix", ""], "each --prefix must be non-empty text, got ''."),
    ("mnist_rows", ["--limit-train", "1.5"], "argument --limit-train: invalid int value: '1.5'"),
    ("mnist_rows", ["--activation", "relu"], "got --cell lstm"),
    ("sine", ["--cell", "gru", "--activation", "relu"], "fixed nonlinearities), got --cell gru."),
    ("hello", ["--source", ""], "--source must be non-empty text"),
    ("evaluate", [], "the following arguments are required: --checkpoint"),
    ("evaluate", ["--checkpoint", "{tmp}/m.safetensors", "--num-steps", "0"], "--num-steps must be a positive number"),
    ("evaluate", ["--checkpoint", "{tmp}/m.safetensors", "--batch-size", "-2"], "--batch-size must be a positive"),
    ("evaluate", ["--checkpoint", "{tmp}/m.safetensors", "--num-preds", "1.5"], "invalid int value: '1.5'"),
    ("evaluate", ["--checkpoint", "{tmp}/m.safetensors", "--prefix", " "], "each --prefix must be non-empty text"),
    ("evaluate", ["--checkpoint", "{tmp}/m.safetensors", "--device", "tpu"], "argument --device: invalid choice"),
    ("evaluate", ["--checkpoint", "{tmp}/m.safetensors"], "No checkpoint file at"),
    ("convert", ["--out", "{tmp}/x.pt"], "Give what to convert: --checkpoint (export), or --from-torch"),
    ("convert", ["--checkpoint", "a", "--from-torch", "b", "--out", "{tmp}/x"], "--checkpoint and --from-torch "
                                                                                "exclude each other"),
    ("convert", ["--from-torch", "a.pt"], "the following arguments are required: --out"),
    ("convert", ["--checkpoint", "a", "--out", "{tmp}/x"], "--checkpoint needs --to"),
    ("convert", ["--checkpoint", "a", "--to", "torch", "--hidden-size", "4", "--out", "{tmp}/x"],
     "--hidden-size is for importing"),
    ("convert", ["--from-gluon", "a", "--to", "torch", "--out", "{tmp}/x"], "--to is for exporting a --checkpoint"),
    ("convert", ["--from-torch", "a", "--hidden-size", "0", "--out", "{tmp}/x"], "--hidden-size must be a positive"),
    ("convert", ["--from-torch", "a", "--val-fraction", "1", "--out", "{tmp}/x"],
     "--val-fraction must be a number in (0, 1), got 1.0"),
    ("compare", ["--seeds", "0"], "--seeds must be a positive number, got 0."),
    ("compare", ["--quick", "--tiny"], "--quick and --tiny exclude each other."),
    ("compare", ["--resume", "--overwrite"], "--resume and --overwrite exclude each other"),
    ("compare", ["--cells", "rnn,transformer"], "each of --cells must be one of rnn, gru, lstm, got 'transformer'."),
    ("compare", ["--backends", ","], "--backends needs at least one value, got none."),
    ("compare", ["--tasks", "char_lm,parse"], "each of --tasks must be one of"),
    ("compare", ["--device", "tpu"], "argument --device: invalid choice: 'tpu'"),
    ("compare", ["--from"], "argument --from: expected at least one argument"),
    ("benchmark", ["--batch-sizes", "32,x"], "invalid comma-separated int list: '32,x'"),
    ("benchmark", ["--batch-sizes", "32,0"], "each of --batch-sizes must be a positive number, got 0."),
    ("benchmark", ["--warmup", "-1"], "--warmup must be zero or more, got -1."),
    ("benchmark", ["--token", "byte"], "argument --token: invalid choice"),
    ("benchmark", ["--impls", "fast"], "each of --impls must be one of scratch, concise, got 'fast'."),
    ("benchmark", ["--compile", "--impls", "concise", "--out", "{tmp}"], "--compile times PyTorch's scratch models"),
    ("benchmark", ["--workers", "0"], "--workers must be a positive number, got 0."),
    ("benchmark", ["--workers", "2", "--epochs", "1"], "--epochs must be at least 2"),
    ("benchmark", ["--workers", "2", "--cells", "rnn,gru"], "argument --cells: invalid choice: 'rnn,gru'"),
    ("launch", ["-n", "2"], "Give the worker's command after --"),
    ("launch", ["-n", "0", "--", "-m", "tasks.char_lm"], "--num-workers must be a positive number, got 0."),
    ("launch", ["-n", "2", "-s", "0", "--", "-m", "tasks.char_lm"], "--num-servers must be a positive number"),
    ("launch", ["-n", "2", "--port", "70000", "--", "-m", "tasks.char_lm"], "--port must be in 0..65535, got 70000."),
    ("launch", ["--", "-m", "tasks.char_lm"], "the following arguments are required: --num-workers/-n"),
    ("crosscheck", ["--out", "{tmp}"], "the following arguments are required: --runs"),
]


@pytest.mark.parametrize("command, argv, fragment", MAIN_REFUSED,
                         ids=[f"{c}-{index}" for index, (c, _, _) in enumerate(MAIN_REFUSED)])
def test_every_command_refuses_in_one_sentence(command: str, argv: list[str], fragment: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a refusal that got through would write under runs/ here, not in the checkout
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]
    before = sorted(tmp_path.rglob("*"))
    code = exit_code(COMMANDS[command], ["--backend", "torch", *argv] if command in TASKS else argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert code == 2, captured.err
    assert len(lines) == 1 and fragment in lines[0], captured.err
    assert sorted(tmp_path.rglob("*")) == before, "a refused command wrote a file"


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_exits_zero_without_exiting_the_caller(command: str, capsys: pytest.CaptureFixture) -> None:
    assert exit_code(COMMANDS[command], ["--help"]) == 0
    assert "usage: python -m tasks." in capsys.readouterr().out


def test_the_backend_default_is_checked_for_the_tools_too(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("SEQCORE_BACKEND", "tensorflow")
    assert exit_code(evaluate.main, ["--checkpoint", "x.safetensors"]) == 2
    assert "SEQCORE_BACKEND must be one of mxnet, torch, got 'tensorflow'." in capsys.readouterr().err
    with pytest.raises(ConfigError, match="SEQCORE_BACKEND must be one of"):
        evaluate.EvaluateOptions(checkpoint="x")


# -- the tools' options from Python --------------------------------------------------------------

TOOL_REFUSED: list[tuple[Callable[..., Any], dict, str]] = [
    (evaluate.EvaluateOptions, {}, "--checkpoint is required."),
    (evaluate.EvaluateOptions, {"checkpoint": "x", "prefixes": "time"}, "--prefix takes a list of values"),
    (evaluate.EvaluateOptions, {"checkpoint": "x", "batch_size": 2.0}, "--batch-size must be a whole number"),
    (evaluate.EvaluateOptions, {"checkpoint": "x", "json": 1}, "--json must be true or false, got 1."),
    (convert.ConvertOptions, {"out": "x"}, "Give what to convert"),
    (convert.ConvertOptions, {"from_torch": "a"}, "--out is required."),
    (convert.ConvertOptions, {"from_torch": "a", "out": "x", "bidirectional": "yes"},
     "--bidirectional must be true or false"),
    (compare.CompareOptions, {"cells": "rnn,gru"}, "--cells takes a list of values, got the single "
                                                   "text 'rnn,gru'"),
    (compare.CompareOptions, {"runs": ()}, "--from needs at least one value, got none."),
    (benchmark.BenchmarkOptions, {"batch_sizes": (32, True)},
     "each of --batch-sizes must be a whole number, got True."),
    (benchmark.ScalingOptions, {}, "--workers is required."),
    (launch.LaunchOptions, {"num_workers": 2}, "Give the worker's command after --"),
    (launch.LaunchOptions, {"num_workers": 2, "command": ("-m", 5)}, "each --command must be text, got 5."),
    (crosscheck.CrosscheckOptions, {"runs": "r.json"}, "--out is required."),
]


@pytest.mark.parametrize("options_class, fields, fragment", TOOL_REFUSED,
                         ids=[f"{c.__name__}-{index}" for index, (c, _, _) in enumerate(TOOL_REFUSED)])
def test_the_tools_options_refuse_in_one_sentence(options_class, fields: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as refused:
        options_class(**fields)
    assert fragment in str(refused.value)


def test_the_tools_options_keep_their_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQCORE_BACKEND", "mxnet")
    options = evaluate.EvaluateOptions(checkpoint="x")
    assert (options.backend, options.batch_size, options.num_steps, options.prefixes) == (
        "mxnet", None, None, ("time traveller",))  # None: the run's own sizes
    grid = compare.CompareOptions(cells=["lstm", "rnn", "lstm"])
    assert grid.cells == ("lstm", "rnn") and grid.backends == ("mxnet", "torch") and grid.device == "cpu"
    assert launch.LaunchOptions(num_workers=3, command=("-m", "x")).num_servers == 3


def test_evaluate_from_python_meets_the_same_sentences(tmp_path: Path) -> None:
    for given, fragment in (({"num_steps": 0}, "--num-steps must be a positive number, got 0."),
                            ({"num_preds": 2.5}, "--num-preds must be a whole number, got 2.5."),
                            ({"prefixes": "time"}, "--prefix takes a list of values")):
        with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            evaluate_checkpoint(checkpoint=str(tmp_path), backend="torch", **given)


# -- evaluate measures with the sizes it reports -------------------------------------------------

def test_the_validation_sizes_are_what_the_text_fills() -> None:
    assert validation_sizes(17_058, 32, 35) == (32, 35)
    assert validation_sizes(17_058, 100_000, 35) == (487, 35)  # the audit's shrunk batch
    assert validation_sizes(17_058, 32, 100_000) == (1, 17_057)  # one window of the whole text
    assert validation_sizes(3, 32, 35) == (1, 2)


def test_sizes_given_must_fit_and_the_runs_own_are_shrunk_as_the_run_shrank_them() -> None:
    saved = SimpleNamespace(train_spec=SimpleNamespace(batch_size=32, num_steps=35, sampler="sequential"))
    path = Path("run/model.safetensors")
    assert measured_sizes(path, saved, 17_058, None, None) == (32, 35)
    assert measured_sizes(path, saved, 1_000, None, None) == (28, 35)  # the run read 28 rows, and so does this
    with pytest.raises(SeqcoreError, match=r"--num-steps 100,000 is more than the 17,057 steps"):
        measured_sizes(path, saved, 17_058, None, 100_000)
    with pytest.raises(SeqcoreError, match=r"--batch-size 100,000 at 35 steps needs 3,500,001 held-out tokens.*"
                                           r"give at most --batch-size 487"):
        measured_sizes(path, saved, 17_058, 100_000, None)
    imported = SimpleNamespace(train_spec=None, provenance={})  # an import records no training spec
    with pytest.raises(SeqcoreError, match="records no training spec .* give --batch-size and --num-steps"):
        measured_sizes(path, imported, 17_058, 32, None)
    assert measured_sizes(path, imported, 17_058, 16, 10) == (16, 10)
