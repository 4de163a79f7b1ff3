"""`tasks.hello` on each backend, in its own process: every implementation and variant learns
'hello' -> 'ohlol' with a falling loss, both backends give the same losses, the command line
prints the prediction every epoch, a resumed run repeats the uninterrupted one's losses exactly, a
finished folder is never run over, and nonsensical sizes end in one sentence."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqcore.run.log import read_metrics
from tests.conftest import assert_one_sentence, python, require_backend
from tests.inprocess import refuses

CONFIGS = [  # (cell, impl, variant): each implementation and variant, the three cells between them
    ("rnn", "scratch", "onehot"), ("gru", "concise", "onehot"),
    ("lstm", "scratch", "embedding"), ("rnn", "concise", "embedding")]
# float32 on both sides, 20 Adam steps on one 5-character sequence. The cross-entropy's rounding
# differs by about 1e-6 absolute from the first step on and stays there while the loss falls towards
# 0.01, so the relative difference grows to 3e-4 (measured); hence an absolute floor.
LOCKSTEP_RTOL, LOCKSTEP_ATOL = 1e-4, 1e-5
COMMON = ["--no-progress", "--device", "cpu"]


def hello(*args: str, **kwargs):
    return python("-m", "tasks.hello", *args, **kwargs)


def epoch_losses(records: list[dict]) -> list[float]:
    return [r["train_loss"] for r in records if r["kind"] == "epoch"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """backend -> {config: summary and epoch losses}, every config trained in one process via run().
    One evaluation at the end (--eval-every 20): the figures are drawn at each evaluation, and the
    training losses of every epoch are recorded either way."""
    cache: dict[str, dict] = {}

    def get(backend: str) -> dict:
        if backend not in cache:
            require_backend(backend)
            out = tmp_path_factory.mktemp(f"hello-{backend}")
            code = (
                "import json; from seqcore.run.log import read_metrics; from tasks.hello import HelloConfig, run\n"
                f"result = {{}}\nfor cell, impl, variant in {CONFIGS!r}:\n"
                f"    d = {str(out)!r} + f'/{{cell}}-{{impl}}-{{variant}}'\n"
                f"    s = run(HelloConfig(backend={backend!r}, cell=cell, impl=impl, input=variant, device='cpu', "
                "progress=False, eval_every=20, out=d))\n"
                "    s['losses'] = [r['train_loss'] for r in read_metrics(d + '/metrics.jsonl')\n"
                "                   if r['kind'] == 'epoch']\n"
                "    result[f'{cell}-{impl}-{variant}'] = s\n"
                "print(json.dumps(result))")
            cache[backend] = json.loads(python("-c", code, check=True).stdout.strip().splitlines()[-1])
        return cache[backend]
    return get


@pytest.mark.slow
def test_every_variant_learns(runs, backend_name: str) -> None:
    for name, summary in runs(backend_name).items():
        assert len(summary["losses"]) == summary["epochs"] == 20, name
        assert summary["final_loss"] < 0.5 * summary["first_loss"], name
        assert summary["predicted"] == "ohlol", name
        assert Path(summary["checkpoint"]).is_file()


@pytest.mark.slow
def test_backends_agree(runs) -> None:
    first, second = runs("mxnet"), runs("torch")
    for name in first:
        assert first[name]["losses"] == pytest.approx(second[name]["losses"], rel=LOCKSTEP_RTOL, abs=LOCKSTEP_ATOL), name


@pytest.mark.slow
def test_command_line_prints_every_epoch(tmp_path: Path) -> None:
    require_backend("torch")
    result = hello("--backend", "torch", "--epochs", "3", *COMMON, "--out", str(tmp_path), check=True)
    assert sum("predicted '" in line for line in result.stdout.splitlines()) == 3 + 1  # epochs + summary
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "loss.png", "model.safetensors", "best.safetensors"):
        assert (tmp_path / name).is_file(), name
    epochs = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    assert all(set(r) >= {"train_loss", "eval_loss", "predicted", "correct"} for r in epochs)


@pytest.mark.slow
def test_resume_repeats_the_uninterrupted_run(backend_name: str, tmp_path: Path) -> None:
    """6 epochs at once, and 3 then --resume --epochs 6: the same losses and predictions, to the last bit."""
    args = ["--backend", backend_name, "--cell", "lstm", "--impl", "concise", "--input", "embedding", *COMMON]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    hello(*args, "--epochs", "6", "--out", str(whole), check=True)
    hello(*args, "--epochs", "3", "--out", str(parts), check=True)
    result = hello("--out", str(parts), "--resume", "--epochs", "6", "--no-progress", check=True)
    assert "epoch   4/6" in result.stdout and "epoch   3/6" not in result.stdout, result.stdout
    expected, got = read_metrics(whole / "metrics.jsonl"), read_metrics(parts / "metrics.jsonl")
    assert [(r["kind"], r.get("epoch")) for r in got] == [(r["kind"], r.get("epoch")) for r in expected]
    assert epoch_losses(got) == epoch_losses(expected)
    for key in ("eval_loss", "predicted"):
        assert [r[key] for r in got if r["kind"] == "epoch"] == [r[key] for r in expected if r["kind"] == "epoch"]


@pytest.mark.slow
def test_rerun_into_a_finished_folder_is_refused(tmp_path: Path) -> None:
    require_backend("torch")
    args = ["--backend", "torch", "--epochs", "2", *COMMON, "--out", str(tmp_path)]
    hello(*args, check=True)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert_one_sentence(hello(*args), f"{tmp_path} is not empty", "--resume", "--overwrite")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert_one_sentence(hello("--out", str(tmp_path), "--resume"), "already trained 2 epochs", "--epochs")
    hello(*args, "--overwrite", check=True)


@pytest.mark.parametrize("args, fragment", [
    (["--hidden-size", "0"], "--hidden-size must be a positive number"),
    (["--num-layers", "-1"], "--num-layers must be a positive number"),
    (["--epochs", "0"], "--epochs must be a positive number"),
    (["--input", "embedding", "--embed-size", "0"], "embed size must be a positive integer"),
    (["--embed-size", "3"], "embed size is only used with embedding inputs"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--target", "ohl"], "same length"),
    (["--source", "", "--target", ""], "non-empty"),
    (["--input", "bigram"], "invalid choice"),
])
def test_nonsensical_sizes(args: list[str], fragment: str, tmp_path: Path) -> None:
    refuses(["-m", "tasks.hello", "--backend", "torch", *COMMON, "--out", str(tmp_path / "run"), *args], tmp_path,
            fragment)
    assert not (tmp_path / "run").exists()  # refused before any folder is made
