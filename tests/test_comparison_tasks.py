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
    result = python("-m", "tasks.compare", "--from", str(tmp_path), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "holds no metrics.jsonl" in result.stderr
