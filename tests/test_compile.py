"""--compile: PyTorch scratch models trained with their time loop through torch.compile.

The compiled models must give the eager models' loss and gradients (float round-off apart), the
compile must really have run, a training run must log the eager run's losses, and a machine
where the compiler cannot work must get one sentence. Compiles take seconds even for these tiny
models (cached on disk by Inductor afterwards), so the cases are few and small.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import python, require_backend

pytestmark = pytest.mark.slow  # every test here runs a framework in a subprocess

TINY = ["--backend", "torch", "--device", "cpu", "--impl", "scratch", "--epochs", "1", "--max-tokens", "600",
        "--batch-size", "4", "--num-steps", "5", "--hidden-size", "8", "--no-progress", "--num-preds", "5",
        "--log-every", "1"]


@pytest.fixture(scope="module")
def compiled_cases(tmp_path_factory) -> dict:
    require_backend("torch")
    out = tmp_path_factory.mktemp("compile") / "cases.json"
    python("tests/scripts/compile_worker.py", str(out), check=True, timeout=900)
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", ["lstm-2layer-bidirectional", "gru", "gru-reset-before", "rnn"])
def test_compiled_scratch_model_gives_the_eager_loss_and_gradients(compiled_cases: dict, case: str) -> None:
    figures = compiled_cases[case]
    assert figures["graphs"] >= 1, "torch.compile made no graph: the compiled path did not run"
    assert figures["compiled_loss"] == pytest.approx(figures["eager_loss"], rel=1e-6)
    assert figures["grad_rel_diff"] < 1e-5, figures


def _step_losses(folder: Path) -> list[float]:
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if r.get("kind") == "step"]


def test_char_lm_with_compile_logs_the_eager_losses(tmp_path: Path) -> None:
    require_backend("torch")
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        python("-m", "tasks.char_lm", *TINY, "--cell", "lstm", "--out", str(tmp_path / name), *extra,
               check=True, timeout=900)
    eager, compiled = _step_losses(tmp_path / "eager"), _step_losses(tmp_path / "compiled")
    assert len(eager) == len(compiled) >= 5
    assert compiled == pytest.approx(eager, rel=1e-5)
    saved = json.loads((tmp_path / "compiled" / "config.json").read_text())
    assert saved["config"]["compile"] is True


def test_a_compiler_that_does_not_work_is_one_sentence(tmp_path: Path, monkeypatch) -> None:
    require_backend("torch")
    # A compiler that is not there, and an empty Inductor cache so nothing compiled earlier is reused.
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-c++"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    result = python("-m", "tasks.char_lm", *TINY, "--cell", "rnn", "--compile", "--out", str(tmp_path / "run"),
                    timeout=900)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "torch.compile could not compile the scratch recurrence on this machine" in result.stderr
    assert "run without --compile" in result.stderr


def test_mxnet_refuses_compile_in_one_sentence() -> None:
    """The MXNet classes take the same arguments as PyTorch's, and refuse compile in one sentence."""
    require_backend("mxnet")
    code = ("from seqcore.backend import load_backend\n"
            "from seqcore.errors import SeqcoreError\n"
            "from seqcore.model.spec import ModelSpec\n"
            "from backends.mxnet import SequenceModel\n"
            "from backends.mxnet.scratch import ScratchRecurrent\n"
            "spec = ModelSpec(cell='lstm', impl='scratch', input_size=4, hidden_size=3, output_size=4)\n"
            "for attempt in (lambda: load_backend('mxnet', compile=True), lambda: SequenceModel(spec, compiled=True),\n"
            "                lambda: ScratchRecurrent('lstm', 4, 3, 1, compiled=True)):\n"
            "    try:\n"
            "        attempt()\n"
            "    except SeqcoreError as error:\n"
            "        print(error)\n")
    lines = python("-c", code, check=True).stdout.splitlines()
    assert len(lines) == 3
    assert "--compile is PyTorch's torch.compile; the mxnet backend has no counterpart" in lines[0]
    assert all("PyTorch's torch.compile" in line and "MXNet has no counterpart" in line for line in lines[1:])
