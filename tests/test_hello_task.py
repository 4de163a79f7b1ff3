"""`tasks.hello` on each backend, in its own process: every implementation and variant learns
'hello' -> 'ohlol' with a falling loss, both backends give the same losses, the command line
prints the prediction every epoch, and nonsensical sizes end in one sentence."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import assert_one_sentence, python, require_backend

CONFIGS = [  # (cell, impl, variant): each implementation and variant, the three cells between them
    ("rnn", "scratch", "onehot"), ("gru", "concise", "onehot"),
    ("lstm", "scratch", "embedding"), ("rnn", "concise", "embedding")]
# float32 on both sides, 20 Adam steps on one 5-character sequence. The cross-entropy's rounding
# differs by about 1e-6 absolute from the first step on and stays there while the loss falls towards
# 0.01, so the relative difference grows to 3e-4 (measured); hence an absolute floor.
LOCKSTEP_RTOL, LOCKSTEP_ATOL = 1e-4, 1e-5
COMMON = ["--no-progress", "--device", "cpu"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """backend -> {config: summary and epoch losses}, every config trained in one process via run()."""
    cache: dict[str, dict] = {}

    def get(backend: str) -> dict:
        if backend not in cache:
            require_backend(backend)
            out = tmp_path_factory.mktemp(f"hello-{backend}")
            code = (
                "import json; from seqcore.reports import read_metrics; from tasks.hello import run\n"
                f"result = {{}}\nfor cell, impl, variant in {CONFIGS!r}:\n"
                f"    d = {str(out)!r} + f'/{{cell}}-{{impl}}-{{variant}}'\n"
                f"    s = run(backend={backend!r}, cell=cell, impl=impl, variant=variant, device='cpu', "
                "progress=False, verbose=False, out=d)\n"
                "    s['losses'] = [r['loss'] for r in read_metrics(d + '/metrics.jsonl') if r['kind'] == 'epoch']\n"
                "    result[f'{cell}-{impl}-{variant}'] = {k: v for k, v in s.items() if k != 'machine'}\n"
                "print(json.dumps(result))")
            cache[backend] = json.loads(python("-c", code, check=True).stdout.strip().splitlines()[-1])
        return cache[backend]
    return get


def test_every_variant_learns(runs, backend_name: str) -> None:
    for name, summary in runs(backend_name).items():
        assert summary["final_loss"] < 0.5 * summary["first_loss"], name
        assert summary["predicted"] == "ohlol", name
        assert Path(summary["checkpoint"]).is_file()


def test_backends_agree(runs) -> None:
    first, second = runs("mxnet"), runs("torch")
    for name in first:
        assert first[name]["losses"] == pytest.approx(second[name]["losses"], rel=LOCKSTEP_RTOL, abs=LOCKSTEP_ATOL), name


def test_command_line_prints_every_epoch(tmp_path: Path) -> None:
    require_backend("torch")
    result = python("-m", "tasks.hello", "--backend", "torch", "--epochs", "3", *COMMON, "--out", str(tmp_path),
                    check=True)
    assert sum("predicted '" in line for line in result.stdout.splitlines()) == 3 + 1  # epochs + summary
    for name in ("metrics.jsonl", "loss.png", "model.safetensors"):
        assert (tmp_path / name).is_file(), name


@pytest.mark.parametrize("args, fragment", [
    (["--hidden-size", "0"], "hidden size must be a positive integer"),
    (["--num-layers", "-1"], "num layers must be a positive integer"),
    (["--epochs", "0"], "num epochs must be a positive integer"),
    (["--variant", "embedding", "--embed-size", "0"], "embed size must be a positive integer"),
    (["--embed-size", "3"], "embed size is only used with embedding inputs"),
    (["--lr", "0"], "learning rate must be a positive number"),
    (["--target", "ohl"], "same length"),
    (["--source", "", "--target", ""], "non-empty"),
])
def test_nonsensical_sizes(args: list[str], fragment: str) -> None:
    assert_one_sentence(python("-m", "tasks.hello", "--backend", "torch", *COMMON, *args), fragment)
