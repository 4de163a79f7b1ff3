"""What every task shares beyond its flags: the default backend (SEQCORE_BACKEND, else the one
framework installed, else MXNet) and `--version`, which reads versions without importing a
framework."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from seqcore.errors import SeqcoreError
from tasks.cli import BACKEND_ENV, default_backend, parse_config
from tasks.mnist_rows import MnistConfig
from tests.conftest import ROOT
from tests.inprocess import refuses, run_command

TASKS = sorted(path.stem for path in (ROOT / "tasks").glob("*.py")  # the runnable ones
               if 'if __name__ == "__main__":' in path.read_text(encoding="utf-8"))


def test_every_runnable_task_is_covered() -> None:
    assert {"char_lm", "mnist_rows", "sine", "hello", "evaluate", "benchmark", "compare"} <= set(TASKS)


@pytest.mark.parametrize("task", TASKS)
def test_version(task: str, tmp_path: Path) -> None:
    """`seqcore X (mxnet ..., torch ..., numpy ...)`, exit 0, and no framework imported (run_command
    fails the test on any attempt)."""
    result = run_command(["-m", f"tasks.{task}", "--version"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.fullmatch(r"seqcore \d+\.\d+\.\d+\S* \(mxnet \S+( \S+)?, torch \S+( \S+)?, numpy \S+\)\n",
                        result.stdout), result.stdout


@pytest.mark.parametrize("value, expected", [("torch", "torch"), ("mxnet", "mxnet"), (" torch ", "torch")])
def test_environment_sets_the_default(monkeypatch: pytest.MonkeyPatch, value: str, expected: str) -> None:
    monkeypatch.setenv(BACKEND_ENV, value)
    assert default_backend() == expected
    assert MnistConfig().backend == expected  # the saved config records the resolved name
    other = "mxnet" if expected == "torch" else "torch"
    assert parse_config(MnistConfig, "mnist_rows", ["--backend", other], "doc").backend == other  # the flag wins


def test_without_the_variable_the_installed_framework(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.setenv(BACKEND_ENV, "")  # empty counts as unset
    assert default_backend(find=lambda name: name == "torch" or None) == "torch"
    assert default_backend(find=lambda name: name == "mxnet" or None) == "mxnet"
    assert default_backend(find=lambda name: True) == "mxnet"  # both: MXNet, the material's framework
    assert default_backend(find=lambda name: None) == "mxnet"  # none: the task says what to install


def test_a_bad_value_is_one_sentence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(BACKEND_ENV, "tensorflow")
    with pytest.raises(SeqcoreError, match="SEQCORE_BACKEND must be one of mxnet, torch, got 'tensorflow'"):
        default_backend()
    refuses(["-m", "tasks.evaluate", "--checkpoint", str(tmp_path / "x.safetensors")], tmp_path,
            "SEQCORE_BACKEND must be one of mxnet, torch, got 'tensorflow'.")
