"""A resume is checked against the checkpoint, not against the editable config.json, by the run
layer, so a command line, a config file and a Python call get the same check and the same
sentence; data is identified by its files' SHA-256, not by where they lie; a run folder deleted
or replaced while the run trains stops the run without anything being made again.

Refusals run in this process (tasks' main() and run() refuse before a framework loads); the
material (tiny PyTorch runs) and the resumes that train run in subprocesses.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqcore.data.spec import HelloSpec
from seqcore.errors import SeqcoreError
from seqcore.run.checkpoint import load_checkpoint
from seqcore.run.folder import Mode
from seqcore.run.log import read_metrics
from tests.conftest import ROOT, assert_one_sentence, python, require_backend
from tests.idx_files import banded, write_set
from tests.test_run_layer import FakeJob, fit

TINY = ["--backend", "torch", "--device", "cpu", "--epochs", "1", "--max-tokens", "600", "--batch-size", "4",
        "--num-steps", "5", "--hidden-size", "8", "--num-preds", "5", "--no-progress", "--eval-every", "1"]
HINT = "a resumed run keeps its configuration; start a new run (another --out) to change it"


def steps(folder: Path) -> list[dict]:
    return [r for r in read_metrics(folder / "metrics.jsonl") if r["kind"] == "step"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny char_lm run (format 3), never changed by a test: each test resumes a copy."""
    require_backend("torch")
    out = tmp_path_factory.mktemp("material") / "run"
    python("-m", "tasks.char_lm", *TINY, "--log-every", "1", "--out", str(out), check=True)
    return out


@pytest.fixture
def copy(trained: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(trained, target)
    return target


def edit_config(folder: Path, **fields) -> None:
    saved = json.loads((folder / "config.json").read_text())
    saved["config"].update(fields)
    (folder / "config.json").write_text(json.dumps(saved))


def refused(call, *fragments: str) -> str:
    with pytest.raises(SeqcoreError) as error:
        call()
    for fragment in fragments:
        assert fragment in str(error.value), str(error.value)
    return str(error.value)


# -- config.json edited by hand ------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("field, value, shown", [("lr", 0.5, "--lr 0.5"), ("backend", "mxnet", "--backend mxnet"),
                                                 ("batch_size", 16, "--batch-size 16")])
def test_resume_refuses_a_hand_edited_config_json(copy: Path, field: str, value, shown: str) -> None:
    """(main used to continue at the edited value: another lr, MXNet, a batch of 16 with a state of 4)"""
    from tasks.char_lm import main

    before = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    edit_config(copy, **{field: value})
    message = refused(lambda: main(["--out", str(copy), "--resume", "--epochs", "2"]),
                      f"{copy / 'config.json'} was edited: it says {shown}", "restore it", HINT)
    assert "model.safetensors" in message
    after = {p.name: p.read_bytes() for p in copy.iterdir() if p.is_file()}
    assert {k: v for k, v in after.items() if k != "config.json"} == {k: v for k, v in before.items()
                                                                      if k != "config.json"}


@pytest.mark.slow
def test_a_hand_edited_resumable_field_is_taken(copy: Path) -> None:
    """--epochs (and the output flags) may change on a resume, in config.json too."""
    edit_config(copy, epochs=2, eval_every=2)
    python("-m", "tasks.char_lm", "--out", str(copy), "--resume", check=True)
    assert load_checkpoint(copy / "model.safetensors").position["epochs_done"] == 2


@pytest.mark.slow
def test_the_command_line_and_python_get_the_same_sentence(copy: Path) -> None:
    from tasks.char_lm import CharLMConfig, main, run

    expected = f"--lr 0.01 differs from the run in {copy} (1.0); {HINT}."
    assert refused(lambda: main(["--out", str(copy), "--resume", "--epochs", "3", "--lr", "0.01"])) == expected
    # (main used to resume a Python call at lr 0.01 and rewrite config.json with it)
    tiny = dict(backend="torch", device="cpu", max_tokens=600, batch_size=4, num_steps=5, hidden_size=8,
                num_preds=5, progress=False, eval_every=1)
    assert refused(lambda: run(CharLMConfig(**tiny, out=str(copy), resume=True, epochs=3, lr=0.01))) == expected
    assert refused(lambda: run(CharLMConfig.resume_from(copy, epochs=3, lr=0.01))) == expected
    every = refused(lambda: run(CharLMConfig(out=str(copy), resume=True, epochs=3, backend="torch", device="cpu")),
                    "--hidden-size 256", "--batch-size 32", "--num-steps 35", "--max-tokens 10000", " differ from ")
    assert "(8, 4, 5 and 600)" in every  # the run's values, in the same order
    assert json.loads((copy / "config.json").read_text())["config"]["lr"] == 1.0  # not rewritten


@pytest.mark.slow
def test_resume_from_continues_a_run_from_python(copy: Path, trained: Path, tmp_path: Path) -> None:
    code = ("import json; from tasks.char_lm import CharLMConfig, run\n"
            f"print(json.dumps(run(CharLMConfig.resume_from({str(copy)!r}, epochs=2))['epochs']))")
    assert python("-c", code, check=True).stdout.strip().splitlines()[-1] == "2"
    whole = tmp_path / "whole"
    python("-m", "tasks.char_lm", *TINY, "--log-every", "1", "--epochs", "2", "--out", str(whole), check=True)
    assert steps(copy) == steps(whole)


@pytest.mark.slow
def test_config_and_resume_exclude_each_other(copy: Path) -> None:
    from tasks.char_lm import main

    refused(lambda: main(["--config", str(copy / "config.json"), "--out", str(copy), "--resume"]),
            "--config and --resume exclude each other")
    result = python("-m", "tasks.char_lm", "--config", str(copy), "--out", str(copy), "--resume")
    assert_one_sentence(result, "--config and --resume exclude each other")


# -- the data by its hashes ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory) -> Path:
    """A char_lm run on its own copy of the Time Machine, in folder/book.txt."""
    require_backend("torch")
    from seqcore.data.corpus import time_machine_path

    root = tmp_path_factory.mktemp("corpus")
    shutil.copyfile(time_machine_path(), root / "book.txt")
    python("-m", "tasks.char_lm", *TINY, "--corpus", str(root / "book.txt"), "--out", str(root / "run"), check=True)
    return root


@pytest.mark.slow
def test_a_moved_corpus_with_the_same_bytes_resumes(corpus_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(corpus_run / "run", run)
    moved = tmp_path / "elsewhere" / "book.txt"
    moved.parent.mkdir()
    shutil.copyfile(corpus_run / "book.txt", moved)
    python("-m", "tasks.char_lm", "--out", str(run), "--resume", "--epochs", "2", "--corpus", str(moved), check=True)
    saved = load_checkpoint(run / "model.safetensors")
    assert saved.position["epochs_done"] == 2 and saved.data_spec.source == str(moved)


@pytest.mark.slow
def test_a_changed_corpus_is_refused(corpus_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(corpus_run / "run", run)
    changed = tmp_path / "book.txt"
    text = (corpus_run / "book.txt").read_text()
    tail = text.rindex("the ")  # one letter: the same vocabulary, other bytes
    changed.write_text(text[:tail] + "tha " + text[tail + 4:])
    from tasks.char_lm import main

    refused(lambda: main(["--out", str(run), "--resume", "--epochs", "2", "--corpus", str(changed)]),
            f"The data of the run in {run} changed since it was trained (corpus_sha256 had SHA-256",
            "a resume needs the same bytes")


@pytest.mark.slow
def test_a_moved_image_folder_resumes_and_a_changed_file_is_refused(tmp_path: Path) -> None:
    """An IDX set (no published checksums: its SHA-256 in the checkpoint is all that vouches for it).
    (main refused the moved folder: '--data-dir ... differs from the run')"""
    require_backend("torch")
    first, second = tmp_path / "first", tmp_path / "second"
    write_set(first, banded(96, seed=0), banded(32, seed=1))
    run = tmp_path / "run"
    python("-m", "tasks.mnist_rows", "--backend", "torch", "--device", "cpu", "--epochs", "1", "--dataset", "idx",
           "--batch-size", "32", "--hidden-size", "8", "--no-progress", "--data-dir", str(first), "--out", str(run),
           check=True)
    first.rename(second)
    result = python("-m", "tasks.mnist_rows", "--out", str(run), "--resume", "--epochs", "2")
    assert_one_sentence(result, f"The IDX data directory {first} does not exist")
    python("-m", "tasks.mnist_rows", "--out", str(run), "--resume", "--epochs", "2", "--data-dir", str(second),
           check=True)
    assert load_checkpoint(run / "model.safetensors").data_spec.folder == str(second)
    images = second / "t10k-images-idx3-ubyte"  # raw: one pixel changed, still a valid IDX file
    data = bytearray(images.read_bytes())
    data[-1] ^= 1
    images.write_bytes(bytes(data))
    from tasks.mnist_rows import main

    refused(lambda: main(["--out", str(run), "--resume", "--epochs", "3", "--data-dir", str(second)]),
            f"The data of the run in {run} changed since it was trained (t10k-images-idx3-ubyte had SHA-256")


# -- the folder deleted or replaced while the run trains ------------------------------------------

class DeletingJob(FakeJob):
    """Deletes (and with `replace`, makes again) the run folder when its first figures are drawn."""

    def __init__(self, replace: bool):
        super().__init__()
        self.replace = replace

    def plot(self, run):
        if not self.plots:
            shutil.rmtree(run.folder)
            if self.replace:
                run.folder.mkdir()
        super().plot(run)


@pytest.mark.parametrize("replace", [False, True])
def test_a_folder_deleted_or_replaced_stops_the_run_and_is_not_made_again(tmp_path: Path, replace: bool) -> None:
    """(main re-created the folder, or wrote on into the new one, and finished without config.json)"""
    out = tmp_path / "run"
    refused(lambda: fit(out, epochs=3, job=DeletingJob(replace), log_every=1),
            f"The run folder {out} was deleted or replaced while the run was training",
            "no folder or file was made again")
    assert (out.is_dir() and not list(out.iterdir())) if replace else not out.exists()


@pytest.mark.slow
def test_a_folder_deleted_under_a_training_command_ends_in_one_sentence(tmp_path: Path) -> None:
    require_backend("torch")
    out = tmp_path / "run"
    args = [*TINY, "--max-tokens", "5500", "--epochs", "4", "--log-every", "1", "--out", str(out)]
    process = subprocess.Popen([sys.executable, "-m", "tasks.char_lm", *args], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 600
    while not (out / "model.safetensors").is_file():  # the first epoch's checkpoint
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
        time.sleep(0.01)
    shutil.rmtree(out)
    stdout, stderr = process.communicate(timeout=600)
    assert_one_sentence(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr),
                        f"The run folder {out} was deleted or replaced while the run was training")
    assert not out.exists()


def test_a_resume_finds_the_run_folder_it_locked(tmp_path: Path) -> None:
    """The fake run resumes as before when nothing happened to its folder (the guard's identity)."""
    out = tmp_path / "run"
    fit(out, epochs=2)
    summary, _ = fit(out, epochs=3, mode=Mode.RESUME)
    assert summary["epochs"] == 3 and summary["data"] == HelloSpec().to_dict()
    assert summary["num_fakes"] == 3 and summary["backend"] == "fake" and summary["device"] == "cpu"


def test_a_signal_still_stops_a_run_cleanly(tmp_path: Path) -> None:
    """Nothing of the folder guard gets in the way of a stop (its checkpoint is written)."""
    from seqcore.run.session import RunInterrupted

    out = tmp_path / "run"
    job = FakeJob(steps=5)

    def on_backward(updates: int) -> None:
        if updates == 6:
            import os

            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(RunInterrupted):
        fit(out, epochs=2, job=job, on_backward=on_backward, log_every=1)
    assert load_checkpoint(out / "model.safetensors").position["steps_done"] >= 1
