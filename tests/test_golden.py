"""Run folders written before checkpoint format 3 (tests/golden/format2, see its README) still load,
evaluate, convert, report and resume; a resume continues them exactly as an uninterrupted run of
the current code, and one whose config.json was edited is refused on the typed record (format 2
recorded no configuration)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seqcore.data.spec import CorpusSpec, MnistSpec
from seqcore.errors import SeqcoreError
from seqcore.report.records import load_run
from seqcore.run.checkpoint import load_checkpoint
from seqcore.run.log import read_metrics
from tests.conftest import ROOT, python, require_backend

GOLDEN = ROOT / "tests" / "golden" / "format2"
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
CHAR = ["--backend", "torch", "--device", "cpu", "--max-tokens", "600", "--batch-size", "4", "--num-steps", "5",
        "--hidden-size", "8", "--num-preds", "5", "--no-progress", "--log-every", "1", "--eval-every", "1",
        "--checkpoint-every", "1"]
STOPPED = [*CHAR, "--cell", "lstm", "--max-tokens", "2000"]
MNIST = ["--backend", "torch", "--device", "cpu", "--limit-train", "64", "--limit-test", "32", "--batch-size", "32",
         "--hidden-size", "8", "--no-progress", "--log-every", "1", "--data-dir", str(SHARED_MNIST)]
RTOL = 1e-6  # the same backend and computation; not bitwise, in case the tests run on another CPU


def copied(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(GOLDEN / name, target)
    return target


def summary_of(folder: Path) -> dict:
    return [r for r in read_metrics(folder / "metrics.jsonl") if r["kind"] == "summary"][-1]


def assert_same_steps(got: Path, want: Path) -> None:
    a, b = ([r for r in read_metrics(f / "metrics.jsonl") if r["kind"] == "step"] for f in (got, want))
    assert [(r["epoch"], r["step"], r["global_step"]) for r in a] == [(r["epoch"], r["step"], r["global_step"])
                                                                      for r in b]
    assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=RTOL)


def test_the_golden_checkpoints_load_with_a_derived_data_spec() -> None:
    char, stopped, rows = (load_checkpoint(GOLDEN / name / "model.safetensors")
                           for name in ("char_lm", "char_lm_stopped", "mnist_rows"))
    assert {c.format for c in (char, stopped, rows)} == {"seqcore-checkpoint-2"}
    old = "frequency-alphabetical"  # formats 1 and 2 broke frequency ties alphabetically
    assert char.data_spec == CorpusSpec(max_tokens=600, vocab_order=old)
    assert stopped.data_spec == CorpusSpec(max_tokens=2000, vocab_order=old)
    assert rows.data_spec == MnistSpec(folder="/work/shared/data/mnist", limit_train=64, limit_test=32)
    assert char.provenance["backend"] == "torch" and char.fingerprint["corpus_sha256"]
    assert len(stopped.recurrent_state) == 2 and stopped.position["steps_done"] == 21
    assert set(rows.optimizer) >= {"adam.step"}


def test_the_golden_runs_still_report() -> None:
    """tasks.compare --from reads finished run folders (their run line and summary)."""
    for name, metric in (("char_lm", "val_ppl"), ("mnist_rows", "test_accuracy")):
        record = load_run(GOLDEN / name)
        assert record["backend"] == "torch" and record["metric"] == metric
        assert record["value"] == summary_of(GOLDEN / name)[metric]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["char_lm", "char_lm_stopped"])
def test_the_golden_checkpoints_evaluate_to_their_own_figure(backend_name: str, name: str, tmp_path: Path) -> None:
    best = ["--best"] if name == "char_lm_stopped" else []  # its last checkpoint is inside epoch 2
    result = python("-m", "tasks.evaluate", "--checkpoint", str(GOLDEN / name), *best, "--backend", backend_name,
                    "--device", "cpu", "--json", check=True)
    evaluated = json.loads(result.stdout)
    val_ppl = [r["val_ppl"] for r in read_metrics(GOLDEN / name / "metrics.jsonl") if r["kind"] == "epoch"][-1]
    assert evaluated["written_by"] == "torch" and evaluated["data"] == CorpusSpec(
        max_tokens=600 if name == "char_lm" else 2000, vocab_order="frequency-alphabetical").to_dict()
    assert evaluated["val_ppl"] == pytest.approx(val_ppl, rel={"torch": 1e-6, "mxnet": 1e-5}[backend_name])


@pytest.mark.slow
def test_a_golden_checkpoint_converts(tmp_path: Path) -> None:
    require_backend("torch")
    python("-m", "tasks.convert", "--checkpoint", str(GOLDEN / "char_lm"), "--to", "torch",
           "--out", str(tmp_path / "lm.pt"), check=True)
    assert (tmp_path / "lm.pt").is_file()


@pytest.mark.slow
def test_a_golden_run_resumes_as_an_uninterrupted_run(tmp_path: Path) -> None:
    require_backend("torch")
    run, whole = copied("char_lm", tmp_path), tmp_path / "whole"
    python("-m", "tasks.char_lm", "--out", str(run), "--resume", "--epochs", "2", check=True)
    python("-m", "tasks.char_lm", *CHAR, "--epochs", "2", "--out", str(whole), check=True)
    assert_same_steps(run, whole)
    assert summary_of(run)["val_ppl"] == pytest.approx(summary_of(whole)["val_ppl"], rel=RTOL)
    assert load_checkpoint(run / "model.safetensors").format == "seqcore-checkpoint-3"


@pytest.mark.slow
def test_a_golden_run_stopped_inside_an_epoch_resumes_with_its_carried_state(tmp_path: Path) -> None:
    require_backend("torch")
    run, whole = copied("char_lm_stopped", tmp_path), tmp_path / "whole"
    python("-m", "tasks.char_lm", "--out", str(run), "--resume", check=True)
    python("-m", "tasks.char_lm", *STOPPED, "--epochs", "2", "--out", str(whole), check=True)
    assert_same_steps(run, whole)
    kinds = [r["kind"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] != "step"]
    assert kinds.count("run") == 1 and kinds.count("interrupted") == 1 and kinds[-1] == "summary"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"no MNIST files at {SHARED_MNIST}")
def test_the_golden_mnist_run_resumes_with_its_adam_state(tmp_path: Path) -> None:
    require_backend("torch")
    run, whole = copied("mnist_rows", tmp_path), tmp_path / "whole"
    python("-m", "tasks.mnist_rows", "--out", str(run), "--resume", "--epochs", "2", "--data-dir", str(SHARED_MNIST),
           check=True)
    python("-m", "tasks.mnist_rows", *MNIST, "--epochs", "2", "--out", str(whole), check=True)
    assert_same_steps(run, whole)
    assert summary_of(run)["test_loss"] == pytest.approx(summary_of(whole)["test_loss"], rel=RTOL)


@pytest.mark.parametrize("field, value, fragment", [
    ("lr", 0.5, "--lr 0.5 differs from the run in {run} (1.0)"),
    ("batch_size", 16, "--batch-size 16 differs from the run in {run} (4)"),
    ("backend", "mxnet", "--backend mxnet differs from the run in {run} (torch)"),
    ("hidden_size", 16, "holds another model than this run's configuration describes (hidden size 8, here 16)"),
    ("max_tokens", 700, "The data of the run in {run} is not the data it was trained on (max_tokens was 600, is "
                        "700; num_train_tokens was 600, is 700)"),
])
def test_a_golden_run_with_an_edited_config_json_is_refused(tmp_path: Path, field: str, value, fragment: str) -> None:
    """Format 2 recorded no configuration, so config.json is the request; the typed record refuses
    what changes the numbers, before a framework loads (tasks' main() runs here in-process)."""
    from tasks.char_lm import main

    run = copied("char_lm", tmp_path)
    saved = json.loads((run / "config.json").read_text())
    saved["config"][field] = value
    (run / "config.json").write_text(json.dumps(saved))
    with pytest.raises(SeqcoreError) as error:
        main(["--out", str(run), "--resume", "--epochs", "2"])
    assert fragment.format(run=run) in str(error.value)
