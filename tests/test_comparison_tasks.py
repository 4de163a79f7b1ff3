"""The side-by-side tasks: benchmark (throughput) and compare (training runs), on tiny sizes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqcore.backend import BACKENDS
from tests.conftest import python, require_backend
from tests.inprocess import refuses


@pytest.mark.slow
def test_benchmark_reports_every_backend_and_model(tmp_path: Path) -> None:
    for name in BACKENDS:
        require_backend(name)
    result = python("-m", "tasks.benchmark", "--cells", "rnn,gru", "--impls", "scratch,concise", "--steps", "2",
                    "--warmup", "1", "--repeats", "3", "--batch-sizes", "4,6", "--num-steps", "5", "--hidden-size", "8",
                    "--out", str(tmp_path), check=True)
    reports = json.loads((tmp_path / "benchmark.json").read_text())
    assert [r["backend"] for r in reports] == list(BACKENDS)
    for report in reports:
        assert {(r["cell"], r["impl"], r["batch_size"]) for r in report["results"]} == {
            (cell, impl, batch) for cell in ("rnn", "gru") for impl in ("scratch", "concise") for batch in (4, 6)}
        for r in report["results"]:
            for key in ("spread", "bare_spread"):  # the median of three repetitions, between their extremes
                assert len(r[key]["samples"]) == 3 and r[key]["min"] <= r[key]["median"] <= r[key]["max"]
                assert r[key]["median"] == sorted(r[key]["samples"])[1] > 0
            assert r["vs_bare"] == r["tokens_per_s"] / r["bare_tokens_per_s"]
            assert r["generate_tokens_per_s"] > 0 and r["bare_generate_tokens_per_s"] > 0
        assert report["machine"][report["backend"]]  # the framework's version is recorded
    assert "bare loop" in result.stdout and "scratch / concise" in result.stdout
    assert "tokens/s" in result.stdout and (tmp_path / "benchmark.png").stat().st_size > 0


@pytest.mark.slow
def test_benchmark_word_configuration_uses_an_embedding(tmp_path: Path) -> None:
    """--token word: the whole book's words (vocabulary ~4,600) through an embedding on each backend."""
    for name in BACKENDS:
        require_backend(name)
    python("-m", "tasks.benchmark", "--token", "word", "--cells", "gru", "--impls", "concise", "--steps", "1",
           "--warmup", "1", "--repeats", "1", "--batch-sizes", "2", "--num-steps", "3", "--hidden-size", "4",
           "--embed-size", "3", "--out", str(tmp_path), check=True)
    for report in json.loads((tmp_path / "benchmark.json").read_text()):
        assert report["token"] == "word" and report["embed_size"] == 3
        assert 4000 < report["results"][0]["vocab_size"] < 6000


@pytest.mark.slow
def test_benchmark_compile_adds_pytorch_rows_only(tmp_path: Path) -> None:
    """--compile: a scratch-compiled row on PyTorch beside the eager ones (with its compile time),
    none on MXNet, and the figure draws both backends' rows."""
    for name in BACKENDS:
        require_backend(name)
    result = python("-m", "tasks.benchmark", "--compile", "--cells", "rnn", "--steps", "1", "--warmup", "1",
                    "--repeats", "1", "--batch-sizes", "2", "--num-steps", "3", "--hidden-size", "4",
                    "--out", str(tmp_path), check=True, timeout=900)
    reports = {r["backend"]: r for r in json.loads((tmp_path / "benchmark.json").read_text())}
    assert [r["impl"] for r in reports["mxnet"]["results"]] == ["scratch", "concise"]
    compiled = [r for r in reports["torch"]["results"] if r["impl"] == "scratch-compiled"]
    assert len(compiled) == 1 and compiled[0]["compile_s"] > 0 and compiled[0]["tokens_per_s"] > 0
    assert "torch: scratch-compiled / concise: rnn (batch 2)" in result.stdout
    assert (tmp_path / "benchmark.png").stat().st_size > 0
    refused = python("-m", "tasks.benchmark", "--compile", "--impls", "concise", "--out", str(tmp_path))
    assert refused.returncode == 2 and "--compile times PyTorch's scratch models" in refused.stderr


def test_benchmark_rejects_unknown_names(tmp_path: Path) -> None:
    refuses(["-m", "tasks.benchmark", "--cells", "rnn,lstn"], tmp_path,
            "each of --cells must be one of rnn, gru, lstm, got 'lstn'")


@pytest.mark.slow
def test_compare_trains_both_and_reports(tmp_path: Path) -> None:
    """The flags after `--` reach every run (here: the char LM shrunk); one folder per backend."""
    for name in BACKENDS:
        require_backend(name)
    result = python("-m", "tasks.compare", "--tasks", "char_lm", "--cells", "rnn", "--impls", "concise",
                    "--no-benchmark", "--out", str(tmp_path), "--", "--epochs", "2", "--max-tokens", "800",
                    "--batch-size", "4", "--num-steps", "5", "--hidden-size", "8", "--num-preds", "3", check=True)
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [r["backend"] for r in rows] == list(BACKENDS)
    assert all(r["config"]["hidden_size"] == 8 and r["config"]["epochs"] == 2 for r in rows)
    first, second = (r["value"] for r in rows)
    assert abs(first - second) / first < 1e-3  # same weights and batches: the same numbers
    assert "report.html" in result.stdout and (tmp_path / "figures" / "char_lm_steps.png").is_file()


def test_compare_from_a_directory_without_metrics(tmp_path: Path) -> None:
    refuses(["-m", "tasks.compare", "--from", str(tmp_path), "--out", str(tmp_path / "o")], tmp_path,
            "holds no metrics.jsonl", out=tmp_path / "o")


# -- the benchmark's folder: never silently replaced, never another command's ------------------------

def _benchmark(*argv: str) -> int:
    from tasks.benchmark import main

    return main(list(argv))


def test_benchmark_refuses_another_commands_folder_and_its_own_earlier_results(tmp_path: Path) -> None:
    """In this process: every refusal comes before a worker starts."""
    from seqcore.errors import SeqcoreError

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.json").write_text("{}")
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "benchmark-command.json").write_text(json.dumps({"identity": {"mode": "other"}}))
    (earlier / "benchmark.json").write_text("[]")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    (tmp_path / "file").write_text("")
    cases = [(run, [], "holds a training run (config.json), not a benchmark"),
             (run, ["--overwrite"], "holds a training run (config.json)"),
             (report, [], "holds a comparison report (report.json), not a benchmark"),
             (other, ["--overwrite"], "is not empty and holds no benchmark"),
             (earlier, [], "holds the benchmark of another command"),
             (earlier, ["--resume"], "holds the benchmark of other settings"),
             (tmp_path / "new", ["--resume"], "holds no benchmark to continue"),
             (tmp_path / "file" / "under", [], "Cannot write to --out"),
             (tmp_path / "file", [], "is a file, not a folder")]
    for out, flags, fragment in cases:
        with pytest.raises(SeqcoreError) as refused:
            _benchmark("--cells", "rnn", "--impls", "concise", "--out", str(out), *flags)
        assert fragment in str(refused.value), (out, flags, str(refused.value))
    assert (other / "notes.txt").read_text() == "mine" and json.loads((earlier / "benchmark.json").read_text()) == []
    assert not (tmp_path / "new").exists() and sorted(p.name for p in run.iterdir()) == ["config.json"]


@pytest.mark.slow
def test_benchmark_resume_keeps_the_backends_measured_and_overwrite_replaces(tmp_path: Path) -> None:
    for name in BACKENDS:
        require_backend(name)
    args = ["-m", "tasks.benchmark", "--cells", "rnn", "--impls", "concise", "--steps", "1", "--warmup", "1",
            "--repeats", "1", "--batch-sizes", "2", "--num-steps", "3", "--hidden-size", "4", "--out", str(tmp_path)]
    python(*args, "--backends", BACKENDS[0], check=True)
    first = json.loads((tmp_path / "benchmark.json").read_text())
    again = python(*args, "--backends", BACKENDS[0])
    assert again.returncode == 2 and "holds an earlier benchmark" in again.stderr
    # an interrupted benchmark of both: the first backend's results are there, the second is missing
    marker = json.loads((tmp_path / "benchmark-command.json").read_text())
    marker["identity"]["backends"] = list(BACKENDS)
    (tmp_path / "benchmark-command.json").write_text(json.dumps(marker))
    resumed = python(*args, "--backends", ",".join(BACKENDS), "--resume", check=True)
    assert f"{BACKENDS[0]}: measured earlier, kept" in resumed.stdout
    both = json.loads((tmp_path / "benchmark.json").read_text())
    assert [r["backend"] for r in both] == list(BACKENDS) and both[0] == first[0]
    python(*args, "--backends", BACKENDS[1], "--overwrite", check=True)
    assert [r["backend"] for r in json.loads((tmp_path / "benchmark.json").read_text())] == [BACKENDS[1]]
