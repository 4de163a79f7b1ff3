"""The tools on the translation task: tasks.convert (the encoder-decoder as plain modules, attention
refused), tasks.benchmark --task translate (beside the bare loops), tasks.compare (translation in the
grid, its tables and figures). In this process what needs no framework; the rest marked slow."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from seqcore.backend import BACKENDS
from seqcore.report.grid import plan
from seqcore.report.records import model_order
from tasks import convert
from tasks.cli import exit_code
from tests.conftest import python, require_backend
from tests.test_translate_task import numpy_checkpoint


def refused(capsys, argv: list[str], fragment: str) -> None:
    code = exit_code(convert.main, argv)
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1 and fragment in lines[0], err
    assert not {"torch", "mxnet"} & set(sys.modules)


@pytest.mark.parametrize("attention", ["additive", "dot"])
def test_convert_refuses_attention_in_one_sentence(capsys, tmp_path: Path, attention: str) -> None:
    checkpoint = numpy_checkpoint(tmp_path / "model.safetensors", attention)
    for to in ("torch", "gluon"):
        refused(capsys, ["--checkpoint", str(checkpoint), "--to", to, "--out", str(tmp_path / "out")],
                "has no plain-module form")
    assert not (tmp_path / "out").exists()


def test_convert_refuses_onnx_for_an_encoder_decoder(capsys, tmp_path: Path) -> None:
    checkpoint = numpy_checkpoint(tmp_path / "model.safetensors")
    refused(capsys, ["--checkpoint", str(checkpoint), "--to", "onnx", "--out", str(tmp_path / "out.onnx")],
            "--to torch or --to gluon")


def test_the_grid_runs_the_plain_and_the_attending_model(tmp_path: Path) -> None:
    planned = plan(tmp_path, ["translate"], ["mxnet", "torch"], ["gru"], ["concise"], "cpu", "tiny", 1, None, [])
    assert [(p.backend, p.impl) for p in planned] == [("mxnet", "concise"), ("torch", "concise"),
                                                      ("mxnet", "concise+additive"), ("torch", "concise+additive")]
    assert planned[2].folder.name == "mxnet-gru-concise-additive"
    assert "--attention" in planned[2].args and "--attention" not in planned[0].args
    assert sorted([("gru", "concise+additive"), ("gru", "concise"), ("rnn", "scratch")], key=model_order) == [
        ("rnn", "scratch"), ("gru", "concise"), ("gru", "concise+additive")]


@pytest.mark.slow
@pytest.mark.parametrize("to", ["torch", "gluon"])
def test_convert_writes_the_plain_modules_of_an_encoder_decoder(tmp_path: Path, to: str) -> None:
    require_backend("torch" if to == "torch" else "mxnet")
    checkpoint = numpy_checkpoint(tmp_path / "model.safetensors")
    out = tmp_path / f"seq2seq.{to}"
    done = python("-m", "tasks.convert", "--checkpoint", str(checkpoint), "--to", to, "--out", str(out), check=True)
    assert "GRU encoder-decoder" in done.stdout and "gives seqcore's logits to" in done.stdout
    reader = ("import torch, sys; print(sorted(torch.load(sys.argv[1])))" if to == "torch" else
              "import mxnet as mx, sys; print(sorted(mx.nd.load(sys.argv[1])))")
    names = python("-c", reader, str(out), check=True).stdout
    prefix = "encoder.rnn.weight_ih_l0" if to == "torch" else "encoder.rnn._unfused.0.i2h_weight"
    assert prefix in names and "decoder.head.weight" in names and "decoder.embedding.weight" in names


@pytest.mark.slow
def test_benchmark_times_the_encoder_decoder_beside_the_bare_loop(tmp_path: Path) -> None:
    for name in BACKENDS:
        require_backend(name)
    out = tmp_path / "bench"
    python("-m", "tasks.benchmark", "--task", "translate", "--cells", "gru", "--impls", "scratch,concise",
           "--attentions", "none,additive,dot", "--batch-sizes", "8", "--hidden-size", "8", "--num-layers", "1",
           "--steps", "2", "--repeats", "2", "--warmup", "1", "--out", str(out), check=True, timeout=900)
    reports = json.loads((out / "benchmark.json").read_text())
    assert [r["backend"] for r in reports] == list(BACKENDS)
    for report in reports:
        rows = {r["impl"]: r for r in report["results"]}
        assert set(rows) == {"scratch", "concise", "scratch+additive", "concise+additive", "scratch+dot",
                             "concise+dot"}
        assert all(r["tokens_per_s"] > 0 and r["bare_tokens_per_s"] > 0 and r["vs_bare"] > 0 for r in rows.values())
    assert (out / "benchmark.png").is_file()


@pytest.mark.slow
def test_compare_reports_translation_with_both_backends(tmp_path: Path) -> None:
    for name in BACKENDS:
        require_backend(name)
    out = tmp_path / "report"
    python("-m", "tasks.compare", "--tiny", "--tasks", "translate", "--cells", "gru", "--impls", "concise",
           "--no-benchmark", "--out", str(out), check=True, timeout=900)
    results = json.loads((out / "results.json").read_text())
    assert {(r["backend"], r["impl"]) for r in results} == {(b, i) for b in BACKENDS
                                                           for i in ("concise", "concise+additive")}
    assert all(r["status"] == "done" and r["metric"] == "book_bleu" for r in results)
    markdown = (out / "report.md").read_text()
    for section in ("BLEU: the book's four sentences", "Example translations, both backends side by side",
                    "Attention weights, both backends side by side", "BLEU by source length", "largest difference",
                    "held-out loss"):
        assert section in markdown, section
    assert len(list((out / "figures").glob("translate_attention_*.png"))) == 4
    assert (out / "figures" / "translate_bleu_by_length.png").is_file()
