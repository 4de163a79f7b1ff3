"""`python -m tasks.char_lm` on bad input: one sentence on stderr, exit status 2, no traceback,
nothing good overwritten. Most input is rejected before a framework is even loaded: those cases
call main(argv) in-process (tests/inprocess.py); the ones that train are slow."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqcore.run.log import read_metrics
from tests.conftest import assert_one_sentence, python, require_backend
from tests.inprocess import refuses

TINY = ["--epochs", "1", "--max-tokens", "600", "--batch-size", "4", "--num-steps", "5",
        "--hidden-size", "8", "--no-progress", "--num-preds", "5"]


def run_char_lm(*args: str, **kwargs):
    return python("-m", "tasks.char_lm", *args, **kwargs)


def refused(folder: Path, *args: str, fragments: tuple[str, ...]) -> None:
    out = folder / "run"
    refuses(["-m", "tasks.char_lm", "--backend", "torch", *TINY, "--out", str(out), *args], folder, *fragments,
            out=out)


@pytest.mark.parametrize("flag, value, fragment", [
    ("--backend", "jax", "invalid choice"),
    ("--cell", "transformer", "invalid choice"),
    ("--impl", "fast", "invalid choice"),
    ("--device", "tpu", "invalid choice"),
    ("--epochs", "ten", "invalid int value"),
    ("--schedule", "linear", "invalid choice"),
])
def test_unknown_choices(flag: str, value: str, fragment: str, tmp_path: Path) -> None:
    refused(tmp_path, flag, value, fragments=(fragment,))


@pytest.mark.parametrize("flag, value, fragment", [
    ("--hidden-size", "0", "--hidden-size must be a positive number, got 0"),
    ("--batch-size", "-3", "--batch-size must be a positive number, got -3"),
    ("--num-steps", "0", "--num-steps must be a positive number, got 0"),
    ("--epochs", "0", "--epochs must be a positive number, got 0"),
    ("--lr", "0", "--lr must be a positive number, got 0"),
    ("--lr", "nan", "--lr must be a positive number, got nan"),
    ("--lr", "1e39", "learning rate must fit in float32"),
    ("--clip", "-1", "--clip must be zero or more, got -1"),
    ("--max-tokens", "-1", "--max-tokens must be zero or more, got -1"),
    ("--num-layers", "0", "--num-layers must be a positive number, got 0"),
    ("--temperature", "nan", "--temperature must be zero or more, got nan"),
    ("--prefix", "", "--prefix must be non-empty text"),
])
def test_non_positive_sizes_and_rates(flag: str, value: str, fragment: str, tmp_path: Path) -> None:
    refused(tmp_path, flag, value, fragments=(fragment,))


def test_corpus_problems(tmp_path: Path) -> None:
    empty, binary, digits, short = (tmp_path / n for n in ("empty.txt", "binary.txt", "digits.txt", "short.txt"))
    empty.write_text("")
    binary.write_bytes(b"\xff\xfe\x00abc\x80")
    digits.write_text("1234 5678 !!! ???\n")
    short.write_text("a tiny text")
    cases = [(tmp_path / "missing.txt", "missing.txt"), (empty, "empty"), (binary, "UTF-8"),
             (digits, "no letters"), (short, "batch")]
    for path, fragment in cases:
        refused(tmp_path, "--corpus", str(path), fragments=(fragment,))


def test_prefix_outside_the_vocabulary(tmp_path: Path) -> None:
    refused(tmp_path, "--prefix", "time 2 travel!", fragments=("'2'", "'!'"))


def test_missing_framework_names_the_extra(tmp_path: Path) -> None:
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'torch'\")\n")
    result = run_char_lm("--backend", "torch", *TINY, path_first=str(tmp_path))
    assert_one_sentence(result, "torch backend cannot be loaded", "No module named 'torch'", ".[torch]")


@pytest.mark.slow
def test_gpu_requested_without_one(backend_name: str) -> None:
    result = run_char_lm("--backend", backend_name, *TINY, "--device", "gpu")
    if result.returncode == 0:
        pytest.skip("this machine has a GPU")
    assert_one_sentence(result, "gpu")


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_good_checkpoint(tmp_path: Path) -> None:
    require_backend("torch")
    out = str(tmp_path / "run")
    python("-m", "tasks.char_lm", "--backend", "torch", *TINY, "--out", out, check=True)
    checkpoint = tmp_path / "run" / "model.safetensors"
    good = checkpoint.read_bytes()
    result = run_char_lm("--backend", "torch", *TINY, "--epochs", "3", "--lr", "1e38", "--clip", "0",
                         "--out", str(tmp_path / "nan"))
    assert_one_sentence(result, "The loss became", "epoch 1, step 2", "This run had written no checkpoint yet", "Try a lower --lr")
    assert checkpoint.read_bytes() == good  # another run's folder is never touched
    assert not (tmp_path / "nan" / "model.safetensors").exists()


@pytest.mark.slow
def test_divergence_stops_a_finite_but_exploding_loss(tmp_path: Path) -> None:
    """lr 100 without clipping: losses 3.3, 20.8, 197.6, ... stay finite, and the run stops at the
    first one above 10x the reference (the first step's loss during epoch 1) before its update."""
    require_backend("torch")
    result = run_char_lm("--backend", "torch", *TINY, "--epochs", "3", "--lr", "100", "--clip", "0",
                         "--log-every", "1", "--out", str(tmp_path / "run"))
    assert_one_sentence(result, "The loss reached 197.6", "above the divergence limit 32.88", "epoch 1, step 3",
                        "no checkpoint yet")
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [r["kind"] for r in records] == ["run", "step", "step", "stopped"]
    assert not (tmp_path / "run" / "model.safetensors").exists()
    unchecked = run_char_lm("--backend", "torch", *TINY, "--epochs", "1", "--lr", "100", "--clip", "0",
                            "--divergence", "0", "--out", str(tmp_path / "off"))
    assert unchecked.returncode == 0, unchecked.stderr  # --divergence 0: only NaN / inf stop a run


@pytest.mark.slow
def test_a_second_run_in_one_process_starts_afresh(backend_name: str, tmp_path: Path) -> None:
    """d2l pitfall: a second training run silently reused the first one's weights."""
    code = ("import json\nfrom tasks.char_lm import CharLMConfig, run\n"
            f"kw = dict(backend={backend_name!r}, epochs=2, max_tokens=600, batch_size=4, num_steps=5, "
            f"hidden_size=8, num_preds=5, progress=False, device='cpu')\n"
            f"a = run(CharLMConfig(out={str(tmp_path / 'a')!r}, **kw))\n"
            f"b = run(CharLMConfig(out={str(tmp_path / 'b')!r}, **kw))\n"
            "print(json.dumps([a['train_ppl'], b['train_ppl'], a['samples'] == b['samples']]))")
    first, second, same_text = json.loads(python("-c", code, check=True).stdout.strip().splitlines()[-1])
    assert first == second and same_text


@pytest.mark.slow
def test_logs_people_already_use(tmp_path: Path) -> None:
    """config.json (reruns with --config), metrics.csv, TensorBoard events, last and best checkpoints."""
    require_backend("torch")
    out = tmp_path / "run"
    python("-m", "tasks.char_lm", "--backend", "torch", *TINY, "--epochs", "3", "--eval-every", "1",
           "--tensorboard", "--out", str(out), check=True)
    config = json.loads((out / "config.json").read_text())
    assert config["task"] == "char_lm" and config["config"]["epochs"] == 3 and config["config"]["hidden_size"] == 8
    assert {"argv", "seqcore_version", "git_commit", "created", "machine"} <= set(config)
    header, *rows = (out / "metrics.csv").read_text().splitlines()
    assert header.startswith("epoch,train_loss,train_ppl") and "val_ppl" in header and len(rows) == 3
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "model.safetensors").is_file() and (out / "best.safetensors").is_file()
    rerun = tmp_path / "rerun"
    python("-m", "tasks.char_lm", "--config", str(out / "config.json"), "--out", str(rerun), check=True)
    assert read_metrics(rerun / "metrics.jsonl")[-1]["train_ppl"] == read_metrics(out / "metrics.jsonl")[-1]["train_ppl"]


@pytest.mark.slow
def test_without_out_each_run_gets_a_new_version_folder(tmp_path: Path) -> None:
    require_backend("torch")
    for _ in range(2):
        python("-m", "tasks.char_lm", "--backend", "torch", *TINY, cwd=tmp_path, check=True)
    assert sorted(p.name for p in (tmp_path / "runs" / "char_lm" / "torch-rnn-concise").iterdir()) == [
        "version_0", "version_1"]
