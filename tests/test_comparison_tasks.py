"""The side-by-side tasks: benchmark (throughput) and compare (training runs), on tiny sizes."""
from __future__ import annotations

import json
from pathlib import Path

from seqcore.backend import BACKENDS
from tests.conftest import python, require_backend


def test_benchmark_reports_every_backend_and_model(tmp_path: Path) -> None:
    for name in BACKENDS:
        require_backend(name)
    result = python("-m", "tasks.benchmark", "--cells", "rnn,gru", "--impls", "scratch,concise", "--steps", "2",
                    "--warmup", "1", "--batch-size", "4", "--num-steps", "5", "--hidden-size", "8",
                    "--out", str(tmp_path), check=True)
    reports = json.loads((tmp_path / "benchmark.json").read_text())
    assert [r["backend"] for r in reports] == list(BACKENDS)
    for report in reports:
        assert {(r["cell"], r["impl"]) for r in report["results"]} == {
            ("rnn", "scratch"), ("rnn", "concise"), ("gru", "scratch"), ("gru", "concise")}
        assert all(r["tokens_per_s"] > 0 for r in report["results"])
        assert report["machine"][report["backend"]]  # the framework's version is recorded
    assert "tokens/s" in result.stdout and (tmp_path / "benchmark.png").stat().st_size > 0


def test_benchmark_rejects_unknown_names() -> None:
    result = python("-m", "tasks.benchmark", "--cells", "rnn,lstn")
    assert result.returncode == 2 and "Unknown cell(s) ['lstn']" in result.stderr and "Traceback" not in result.stderr


def test_compare_trains_both_and_reports(tmp_path: Path) -> None:
    for name in BACKENDS:
        require_backend(name)
    result = python("-m", "tasks.compare", "--out", str(tmp_path), "--", "--epochs", "2", "--max-tokens", "800",
                    "--batch-size", "4", "--num-steps", "5", "--hidden-size", "8", "--no-progress",
                    "--num-preds", "3", "--device", "cpu", check=True)
    rows = json.loads((tmp_path / "comparison.json").read_text())
    assert [r["backend"] for r in rows] == list(BACKENDS)
    first, second = (r["train_ppl"] for r in rows)
    assert abs(first - second) / first < 1e-3  # same weights and batches: the same numbers
    assert "train perplexity differs by" in result.stdout and (tmp_path / "comparison.png").is_file()


def test_compare_from_a_directory_without_metrics(tmp_path: Path) -> None:
    result = python("-m", "tasks.compare", "--from", str(tmp_path), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "holds no metrics.jsonl" in result.stderr
