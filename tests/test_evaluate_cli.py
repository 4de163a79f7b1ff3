"""`python -m tasks.evaluate`: the run's own validation perplexity from a real checkpoint, and on
anything that does not match (vocabulary, weights, metadata, corpus, flags) one sentence, exit
status 2, no framework loaded and no file changed.

One tiny run is trained (PyTorch, 600 characters, one epoch) on a copy of the Time Machine in a
temporary folder; each case tampers a copy of its checkpoint, or edits or removes its corpus. The
refusals call main(argv) in-process with framework imports blocked (tests/inprocess.py), which
proves that none loads before the checks; the cases that need the trained run are slow.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from seqcore.data.corpus import time_machine_path
from seqcore.model.params import init_params
from seqcore.model.spec import ModelSpec
from seqcore.run.checkpoint import Checkpoint, save_checkpoint
from tests.conftest import ROOT, assert_one_sentence, python, require_backend
from tests.inprocess import run_command

TINY = ["--epochs", "1", "--max-tokens", "600", "--batch-size", "4", "--num-steps", "5",
        "--hidden-size", "8", "--num-preds", "5", "--no-progress"]
RTOL = {"torch": 1e-6, "mxnet": 1e-5}  # same backend: the same computation; the other: one forward pass


@dataclasses.dataclass(frozen=True)
class Trained:
    folder: Path  # the run folder
    corpus: Path  # the copy of the text it was trained on
    summary: dict[str, Any]  # metrics.jsonl's summary record

    @property
    def checkpoint(self) -> Path:
        return self.folder / "model.safetensors"


def train(root: Path) -> Trained:
    """A tiny char_lm run on its own copy of the Time Machine in `root`."""
    require_backend("torch")
    root.mkdir(parents=True, exist_ok=True)
    corpus = root / "book.txt"
    shutil.copyfile(time_machine_path(), corpus)
    folder = root / "run"
    python("-m", "tasks.char_lm", "--backend", "torch", *TINY, "--corpus", str(corpus), "--out", str(folder),
           check=True)
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return Trained(folder, corpus, [r for r in records if r["kind"] == "summary"][0])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    return train(tmp_path_factory.mktemp("trained"))


def checksums(*roots: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


def evaluate(*args: str, watch: tuple[Path, ...]):
    """Run the command in a process of its own; every file under `watch` must be unchanged afterwards."""
    before = checksums(*watch)
    result = python("-m", "tasks.evaluate", *args)
    assert checksums(*watch) == before, "evaluate changed a file"
    return result


def refused(*args: str, watch: tuple[Path, ...], fragment: str, also: tuple[str, ...] = ()) -> None:
    """The command in-process (no framework may load), refused in one sentence holding `fragment`
    (and `also`); every file under `watch` unchanged."""
    before = checksums(*watch)
    assert_one_sentence(run_command(["-m", "tasks.evaluate", *args], cwd=watch[-1]), fragment, *also)
    assert checksums(*watch) == before, "evaluate changed a file"


def tamper(source: Path, target: Path, edit: Callable[[dict[str, np.ndarray], dict[str, Any]], None]) -> Path:
    """A copy of the checkpoint `source` at `target`, its tensors and decoded metadata passed
    through `edit` (which changes them in place) and written back with safetensors."""
    with safe_open(str(source), framework="np") as handle:
        raw = dict(handle.metadata())
    tensors = load_file(str(source))
    meta = {k: v if k == "format" else json.loads(v) for k, v in raw.items()}
    edit(tensors, meta)
    encoded = {k: v if k == "format" else json.dumps(v) for k, v in meta.items()}
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(target), metadata=encoded)
    return target


def _swap_tokens(tensors, meta):  # two tokens of the table trade places (' ' and 'e')
    table = meta["vocab"]["idx_to_token"]
    table[1], table[2] = table[2], table[1]


def _set(section: str, key: str, value: Any):
    def edit(tensors, meta):
        meta[section][key] = value
    return edit


def _drop(section: str, *keys: str):
    def edit(tensors, meta):
        for key in keys:
            del meta[section][key]
    return edit


def _tensor(name: str, change: Callable[[np.ndarray], np.ndarray]):
    def edit(tensors, meta):
        tensors[name] = change(tensors[name].copy())
    return edit


def _nan(value: np.ndarray) -> np.ndarray:
    value.flat[3] = np.nan
    return value


def _edit_meta(change: Callable[[dict[str, Any]], None]):
    def edit(tensors, meta):
        change(meta)
    return edit


TAMPERED = {
    "permuted vocabulary": (_swap_tokens, "same 28 tokens in another order (index 1 is 'e' in the checkpoint "
                                          "and ' ' in the corpus)"),
    "short vocabulary": (_edit_meta(lambda m: m["vocab"]["idx_to_token"].pop()),
                         "vocabulary of 27 tokens, but its weights read 28 and predict 28"),
    "long vocabulary": (_edit_meta(lambda m: m["vocab"]["idx_to_token"].append("Q")),
                        "vocabulary of 29 tokens, but its weights read 28 and predict 28"),
    "foreign token": (_edit_meta(lambda m: m["vocab"]["idx_to_token"].__setitem__(-1, "Q")),
                      "only in the checkpoint: 'Q'; only in the corpus: 'q'"),
    "vocabulary without <unk>": (_edit_meta(lambda m: m["vocab"]["idx_to_token"].__setitem__(0, "?")),
                                 "damaged vocabulary"),
    "vocabulary of a list": (_set("vocab", "idx_to_token", "abc"), "damaged vocabulary"),
    "NaN weights": (_tensor("head.weight", _nan), "non-finite values in head.weight"),
    "infinite bias": (_tensor("head.bias", lambda v: v + np.inf), "non-finite values in head.bias"),
    "int32 weights": (_tensor("rnn.l0.weight_hh", lambda v: (v * 100).astype(np.int32)),
                      "rnn.l0.weight_hh as int32, not floating point"),
    "missing model_spec": (_edit_meta(lambda m: m.pop("model_spec")), "the key 'model_spec' is missing"),
    "missing vocab": (_edit_meta(lambda m: m.pop("vocab")), "the key 'vocab' is missing"),
    "provenance a list": (_edit_meta(lambda m: m.__setitem__("provenance", [])),
                          "provenance is of type list, not a JSON object"),
    "epoch a string": (_set("provenance", "epoch", "1"), "damaged provenance metadata: epoch is '1' (str)"),
    "backend a number": (_set("provenance", "backend", 3), "damaged provenance metadata: backend is 3 (int)"),
    "no data spec": (_edit_meta(lambda m: m.pop("data_spec")), "records no data spec, not a corpus"),
    "data spec of images": (_edit_meta(lambda m: m.__setitem__("data_spec", {"kind": "mnist", "folder": "/d"})),
                            "records mnist data, not a corpus"),
    "data spec token unknown": (_set("data_spec", "token", "byte"), "token must be 'char' or 'word', got 'byte'"),
    "data spec unknown field": (_set("data_spec", "colour", "red"), "Unknown CorpusSpec field(s): colour"),
    "data spec val_fraction of 1": (_set("data_spec", "val_fraction", 1.0),
                                    "validation fraction must be a number in [0, 1), got 1.0"),
    "data spec max_tokens zero": (_set("data_spec", "max_tokens", 0), "max tokens must be a positive whole number"),
    "corpus_sha256 damaged": (_set("fingerprint", "corpus_sha256", "abc"),
                              "damaged fingerprint: corpus_sha256 is 'abc', not 64 hexadecimal"),
    "no validation text": (_set("data_spec", "val_fraction", 0), "there is no validation text to measure"),
    "corpus elsewhere": (_set("data_spec", "source", "/nonexistent/seqcore/book.txt"),
                         "The corpus /nonexistent/seqcore/book.txt that"),
}

# A format-2 checkpoint (tests/golden, written before format 3) holds the corpus in its `progress`
# fields; their damage is refused naming the format.
GOLDEN = ROOT / "tests" / "golden" / "format2" / "char_lm" / "model.safetensors"
LEGACY_TAMPERED = {
    "progress without val_fraction": (_drop("progress", "val_fraction"),
                                      "(seqcore-checkpoint-2) has incomplete progress metadata: val_fraction is "
                                      "missing"),
    "progress without corpus and token": (_drop("progress", "corpus", "token"),
                                          "incomplete progress metadata: corpus, token are missing"),
    "val_fraction as a string": (_set("progress", "val_fraction", "0.1"),
                                 "val_fraction is '0.1' (str), not a number in [0, 1)"),
    "val_fraction of 1": (_set("progress", "val_fraction", 1.0), "val_fraction is 1.0 (float)"),
    "val_fraction true": (_set("progress", "val_fraction", True), "val_fraction is True (bool)"),
    "max_tokens fractional": (_set("progress", "max_tokens", 600.5), "max_tokens is 600.5 (float)"),
    "max_tokens zero": (_set("progress", "max_tokens", 0), "max_tokens is 0 (int)"),
    "token unknown": (_set("progress", "token", "byte"), "token is 'byte' (str)"),
    "corpus a number": (_set("progress", "corpus", 7), "corpus is 7 (int)"),
    "corpus_hash a list": (_set("progress", "corpus_hash", ["sha256"]), "corpus_hash is ['sha256'] (list)"),
    "epoch a string": (_set("progress", "epoch", "1"), "epoch is '1' (str)"),
    "progress a list": (_edit_meta(lambda m: m.__setitem__("progress", [])),
                        "progress is of type list, not a JSON object"),
    "no corpus fields": (_drop("progress", "corpus", "corpus_hash", "token", "max_tokens", "val_fraction"),
                         "records no data spec, not a corpus (seqcore-checkpoint-2)"),
    "corpus_sha256 damaged": (_set("data", "corpus_sha256", "abc"), "corpus_sha256 is 'abc', not 64 hexadecimal"),
    "NaN weights": (_tensor("head.weight", _nan), "non-finite values in head.weight"),
}


@pytest.mark.parametrize("case", list(LEGACY_TAMPERED))
def test_tampered_format_2_checkpoint(tmp_path: Path, case: str) -> None:
    edit, fragment = LEGACY_TAMPERED[case]
    copy = tamper(GOLDEN, tmp_path / "model.safetensors", edit)
    refused("--checkpoint", str(copy), "--backend", "torch", watch=(GOLDEN.parent, tmp_path), fragment=fragment)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_checkpoint(trained: Trained, tmp_path: Path, case: str) -> None:
    edit, fragment = TAMPERED[case]
    copy = tamper(trained.checkpoint, tmp_path / "model.safetensors", edit)
    refused("--checkpoint", str(copy), "--backend", "torch", watch=(trained.folder.parent, tmp_path),
            fragment=fragment)


@pytest.mark.slow
def test_tamper_keeps_an_untouched_copy_usable(trained: Trained, tmp_path: Path) -> None:
    """The tampering itself changes nothing else: an unedited rewrite evaluates to the run's figure."""
    copy = tamper(trained.checkpoint, tmp_path / "model.safetensors", lambda tensors, meta: None)
    result = evaluate("--checkpoint", str(copy), "--backend", "torch", "--json", watch=(tmp_path,))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["val_ppl"] == pytest.approx(trained.summary["val_ppl"], rel=RTOL["torch"])


@pytest.mark.slow
def test_corpus_edited_then_removed(tmp_path: Path) -> None:
    run = train(tmp_path / "own")
    text = run.corpus.read_text()
    tail = text.rindex("the ")  # one letter in the held-out tail: same vocabulary, other bytes
    run.corpus.write_text(text[:tail] + "tha " + text[tail + 4:])
    refused("--checkpoint", str(run.folder), "--backend", "torch", watch=(tmp_path,),
            fragment=f"The corpus {run.corpus} has changed since", also=("SHA-256",))
    run.corpus.unlink()
    refused("--checkpoint", str(run.folder), "--backend", "torch", watch=(tmp_path,),
            fragment=f"The corpus {run.corpus} that", also=("is missing",))


@pytest.mark.slow
@pytest.mark.parametrize("args, fragment", [
    (["--batch-size", "0"], "--batch-size must be a positive number, got 0"),
    (["--num-steps", "-1"], "--num-steps must be a positive number, got -1"),
    (["--num-preds", "0"], "--num-preds must be a positive number, got 0"),
    (["--prefix", ""], "--prefix must be non-empty text"),
    (["--prefix", "time", "--prefix", "   "], "--prefix must be non-empty text"),
    (["--prefix", "Time Traveller!"], "outside the checkpoint's vocabulary: '!', 'T'"),
    # sizes the held-out text cannot fill: refused, not silently shrunk (the run's own batch 4, 5 steps)
    (["--num-steps", "100000"], "--num-steps 100,000 is more than the "),
    (["--batch-size", "100000"], "--batch-size 100,000 at 5 steps needs 500,001 held-out tokens"),
    (["--batch-size", "1.5"], "argument --batch-size: invalid int value: '1.5'"),
    (["--batch-size", "abc"], "argument --batch-size: invalid int value: 'abc'"),
    (["--backend", "jax"], "argument --backend: invalid choice"),
    (["--device", "tpu"], "argument --device: invalid choice"),
    (["--best", "--checkpoint", "{checkpoint}"], "--best picks best.safetensors in a run folder"),
    (["--checkpoint", "{empty}"], "holds no model.safetensors"),
    (["--checkpoint", "{empty}", "--best"], "holds no best.safetensors"),
])
def test_bad_flags(trained: Trained, tmp_path: Path, args: list[str], fragment: str) -> None:
    paths = {"checkpoint": str(trained.checkpoint), "empty": str(tmp_path)}
    args = [a.format(**paths) for a in args]
    given = [] if "--checkpoint" in args else ["--checkpoint", str(trained.folder)]
    refused(*given, *args, watch=(trained.folder.parent, tmp_path), fragment=fragment)


def test_checkpoint_flag_is_required(tmp_path: Path) -> None:
    result = run_command(["-m", "tasks.evaluate", "--backend", "torch"], cwd=tmp_path)
    assert_one_sentence(result, "the following arguments are required: --checkpoint")
    assert result.stderr.startswith("usage: python -m tasks.evaluate")


def test_missing_checkpoint(tmp_path: Path) -> None:
    refused("--checkpoint", str(tmp_path / "nope.safetensors"), "--backend", "torch", watch=(tmp_path,),
            fragment="No checkpoint file")


def test_checkpoint_without_vocabulary(tmp_path: Path) -> None:
    spec = ModelSpec(cell="lstm", impl="concise", input_size=28, hidden_size=4, output_size=10,
                     input_kind="dense", readout="last")
    path = save_checkpoint(tmp_path / "mnist.safetensors", Checkpoint(spec, init_params(spec)))
    refused("--checkpoint", str(path), "--backend", "torch", watch=(tmp_path,),
            fragment="not a language-model checkpoint")


def test_non_positive_sizes(tmp_path: Path) -> None:
    refused("--checkpoint", str(tmp_path / "m.safetensors"), "--num-steps", "0", watch=(tmp_path,),
            fragment="--num-steps must be a positive number, got 0")


@pytest.mark.slow
def test_the_runs_own_validation_perplexity(trained: Trained, backend_name: str) -> None:
    """The run folder, its model.safetensors and its best.safetensors (one epoch: the same one)
    give the validation perplexity the run logged, on the backend that wrote it and the other."""
    expected = trained.summary["val_ppl"]
    for args in (["--checkpoint", str(trained.folder)], ["--checkpoint", str(trained.checkpoint)],
                 ["--checkpoint", str(trained.folder), "--best"]):
        result = evaluate(*args, "--backend", backend_name, "--device", "cpu", "--json",
                          watch=(trained.folder.parent,))
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stderr
        evaluated = json.loads(result.stdout)
        assert evaluated["written_by"] == "torch" and evaluated["epoch"] == 1
        assert (evaluated["batch_size"], evaluated["num_steps"]) == (4, 5)  # the run's, by default
        assert evaluated["num_val_tokens"] == trained.summary["num_val_tokens"]
        assert evaluated["val_ppl"] == pytest.approx(expected, rel=RTOL[backend_name]), args
        assert evaluated["samples"]["time traveller"].startswith("time traveller")
    result = evaluate("--checkpoint", str(trained.folder), "--backend", backend_name, "--device", "cpu",
                      "--batch-size", "2", "--num-steps", "7", "--prefix", "the time", "--num-preds", "3",
                      watch=(trained.folder.parent,))
    assert result.returncode == 0, result.stderr
    assert "batch 2, 7 steps" in result.stdout and "'the time' -> 'the time" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("where", ["full disk", "closed pipe"])
def test_json_that_cannot_be_delivered_is_an_error(trained: Trained, where: str) -> None:
    """--json's one line is the whole output: lost to a full disk or a reader that has gone, the
    command says so and fails, instead of exiting 0 with nothing delivered."""
    argv = [sys.executable, "-m", "tasks.evaluate", "--checkpoint", str(trained.folder), "--backend", "torch",
            "--device", "cpu", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if where == "full disk":
        with open("/dev/full", "w") as full:
            done = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                                  timeout=600)
    else:
        read, write = os.pipe()
        os.close(read)
        try:
            done = subprocess.run(argv, stdout=write, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                                  timeout=600)
        finally:
            os.close(write)
    assert_one_sentence(done, "The result could not be written to standard output")


@pytest.mark.slow
def test_older_checkpoint_without_corpus_checksum(trained: Trained, tmp_path: Path) -> None:
    """No fingerprint (a format-1 checkpoint had none): a warning, then the same figure."""
    copy = tamper(trained.checkpoint, tmp_path / "model.safetensors", _edit_meta(lambda m: m.pop("fingerprint")))
    result = evaluate("--checkpoint", str(copy), "--backend", "torch", "--json",
                      watch=(trained.folder.parent, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr and "records no SHA-256" in result.stderr
    assert "error:" not in result.stderr
    val_ppl = json.loads(result.stdout)["val_ppl"]
    assert math.isfinite(val_ppl) and val_ppl == pytest.approx(trained.summary["val_ppl"], rel=RTOL["torch"])
