"""tasks.convert: seqcore checkpoints to and from PyTorch state_dicts, Gluon .params and ONNX.

The two plain modules of docs/interchange.md are run exactly as the page prints them (extracted from it),
each framework in its own subprocess; every logit is compared with the NumPy reference. The
name maps and spec inference are tested here without a framework.
"""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from seqcore.errors import SeqcoreError
from seqcore.interchange import d2l_head, foreign_names, infer_spec, to_canonical, to_foreign
from seqcore.model import reference
from seqcore.model.params import init_params, param_shapes
from seqcore.model.spec import ModelSpec
from seqcore.run.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tests.conftest import ROOT, assert_one_sentence, python, require_backend

GUIDE = ROOT / "docs" / "interchange.md"  # the plain modules a user copies
TOLERANCE = 1e-5

GRU = ModelSpec(cell="gru", impl="concise", input_size=7, hidden_size=5, output_size=7, num_layers=2)
BI_LSTM = ModelSpec(cell="lstm", impl="scratch", input_size=7, hidden_size=4, output_size=7, num_layers=2,
                    input_kind="embedding", embed_size=3, bidirectional=True)
BI_RNN_LAST = ModelSpec(cell="rnn", impl="concise", input_size=3, hidden_size=4, output_size=2, activation="relu",
                        input_kind="dense", readout="last", bidirectional=True)
README_LM = ModelSpec(cell="lstm", impl="concise", input_size=28, hidden_size=256, output_size=28, num_layers=2)


def readme_snippet(name: str) -> tuple[str, str]:
    """(the class definition, the usage lines) of the guide's block marked `<!-- test: name -->`."""
    match = re.search(rf"<!-- test: {name} -->\n```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert match, f"docs/interchange.md has no block marked <!-- test: {name} -->"
    code = match.group(1)
    split = code.index("\nmodel = ")
    return code[:split + 1], code[split + 1:]


def checkpoint(tmp: Path, spec: ModelSpec, name: str, seed: int = 1) -> Path:
    path = tmp / f"{name}.safetensors"
    save_checkpoint(path, Checkpoint(model_spec=spec, params=init_params(spec, "uniform", seed)))
    return path


def convert(*args: str) -> None:
    python("-m", "tasks.convert", *args, check=True)


def convert_in_one_process(calls: list[tuple[str, dict]]) -> None:
    """Several conversions through tasks.convert's functions ("export" / "import_weights"), in
    one process (one framework import): the command line itself is run by the other tests."""
    code = ("import json, sys\nfrom tasks import convert\n"
            "for function, kwargs in json.loads(sys.argv[1]):\n    getattr(convert, function)(**kwargs)\n")
    python("-c", code, json.dumps(calls), check=True)


# -- the neutral part: names, spec inference, refusals ------------------------------------------

def test_names_cover_every_parameter_including_the_reverse_direction() -> None:
    torch_names = foreign_names(BI_LSTM, "torch")
    gluon_names = foreign_names(BI_LSTM, "gluon")
    assert list(torch_names) == list(param_shapes(BI_LSTM))
    assert torch_names["rnn.l1.weight_hh_reverse"] == "rnn.weight_hh_l1_reverse"
    assert torch_names["rnn.l0.bias_ih"] == "rnn.bias_ih_l0"
    assert gluon_names["rnn.l1.weight_hh_reverse"] == "rnn._unfused.1.r_cell.h2h_weight"
    assert gluon_names["rnn.l0.bias_ih"] == "rnn._unfused.0.l_cell.i2h_bias"
    assert foreign_names(GRU, "gluon")["rnn.l1.weight_ih"] == "rnn._unfused.1.i2h_weight"
    for names in (torch_names, gluon_names):
        assert len(set(names.values())) == len(names)
        assert names["embedding.weight"] == "embedding.weight" and names["head.bias"] == "head.bias"


@pytest.mark.parametrize("fmt", ["torch", "gluon"])
@pytest.mark.parametrize("spec", [GRU, BI_LSTM, BI_RNN_LAST], ids=["gru", "bi-lstm-embedding", "bi-rnn-dense"])
def test_the_spec_is_read_back_from_the_shapes(fmt: str, spec: ModelSpec) -> None:
    params = init_params(spec, "uniform", 0)
    arrays = to_foreign(spec, params, fmt)
    found = infer_spec(fmt, {k: v.shape for k, v in arrays.items()}, "f", activation=spec.activation.value,
                       input_kind=spec.input_kind.value, readout=spec.readout.value)
    assert found.to_dict() == {**spec.to_dict(), "impl": "concise"}
    back = to_canonical(found, arrays, fmt, "f")
    assert all(np.array_equal(back[k], params[k]) for k in params)


def test_what_the_shapes_cannot_tell_defaults_to_the_frameworks_own() -> None:
    spec = ModelSpec(cell="rnn", impl="concise", input_size=5, hidden_size=4, output_size=5)
    shapes = {fmt: {k: v.shape for k, v in to_foreign(spec, init_params(spec), fmt).items()} for fmt in ("torch", "gluon")}
    assert infer_spec("torch", shapes["torch"], "f").activation.value == "tanh"  # nn.RNN's default
    assert infer_spec("gluon", shapes["gluon"], "f").activation.value == "relu"  # gluon.rnn.RNN's default
    assert infer_spec("gluon", shapes["gluon"], "f", activation="tanh").activation.value == "tanh"
    assert infer_spec("torch", shapes["torch"], "f").input_kind.value == "onehot"
    assert infer_spec("torch", shapes["torch"], "f", input_kind="dense").input_kind.value == "dense"


@pytest.mark.parametrize("flags, fragment", [
    ({"cell": "lstm"}, "holds a GRU (rnn.weight_hh_l0 has 3 gate blocks of 5: (15, 5)), not the LSTM"),
    ({"hidden_size": 8}, "holds 5 hidden units (rnn.weight_hh_l0 is (15, 5)), not the 8 that --hidden-size says"),
    ({"num_layers": 3}, "holds 2 recurrent layers, not the 3 that --num-layers says"),
    ({"bidirectional": True}, "holds no reverse-direction weights, but --bidirectional says"),
    ({"input_kind": "embedding"}, "has no 2-D embedding.weight"),
])
def test_flags_that_contradict_the_file_are_refused(flags: dict, fragment: str) -> None:
    arrays = to_foreign(GRU, init_params(GRU), "torch")
    with pytest.raises(SeqcoreError, match=re.escape(fragment)):
        infer_spec("torch", {k: v.shape for k, v in arrays.items()}, "f", **flags)


def test_missing_extra_and_misshapen_keys_are_named() -> None:
    arrays = to_foreign(GRU, init_params(GRU), "torch")
    missing = {k: v for k, v in arrays.items() if k != "head.bias"}
    with pytest.raises(SeqcoreError, match=r"f does not fit a 2-layer GRU .*: it lacks head\.bias\."):
        to_canonical(GRU, missing, "torch", "f")
    with pytest.raises(SeqcoreError, match=r"it has unexpected rnn\.weight_hr_l0\."):
        to_canonical(GRU, {**arrays, "rnn.weight_hr_l0": np.zeros(3)}, "torch", "f")
    with pytest.raises(SeqcoreError, match=r"f's rnn\.bias_hh_l1 has shape \(14,\), but .* needs \(15,\)"):
        to_canonical(GRU, {**arrays, "rnn.bias_hh_l1": np.zeros(14, np.float32)}, "torch", "f")
    with pytest.raises(SeqcoreError, match="holds no recurrent weights named like rnn.weight_hh_l0"):
        infer_spec("torch", {"lstm.weight_hh_l0": (20, 5), "fc.weight": (7, 5)}, "f")


@pytest.mark.parametrize("fmt, child", [("gluon", "dense"), ("torch", "linear")])
def test_the_books_rnn_model_is_read_with_its_own_head_name(fmt: str, child: str) -> None:
    arrays = to_foreign(GRU, init_params(GRU), fmt)
    book = {(name.replace("head.", child + ".") if name.startswith("head.") else name): v for name, v in arrays.items()}
    renamed = d2l_head(book, fmt)
    assert set(renamed) == set(arrays)
    assert d2l_head(arrays, fmt) == arrays


def test_the_books_gru_has_no_plain_module() -> None:
    spec = ModelSpec(cell="gru", impl="scratch", input_size=5, hidden_size=4, output_size=5, gru_reset="before")
    with pytest.raises(SeqcoreError, match="reset gate before the hidden matmul"):
        to_foreign(spec, init_params(spec), "torch")


# -- export: the guide's plain modules load the files and give the reference's logits ----------

TORCH_EXTRA = """
import numpy as np
np.savez("readme.npz", logits=logits.detach().numpy())
for name, (layer, embed) in {"gru": (nn.GRU(7, 5, num_layers=2), 0),
                             "lstm": (nn.LSTM(3, 4, num_layers=2, bidirectional=True), 3)}.items():
    plain = Plain(layer, vocab_size=7, embed_size=embed)
    plain.load_state_dict(torch.load(name + ".pt"), strict=True)
    ids = torch.from_numpy(np.load("ids.npy"))
    out, _ = plain(ids)
    np.save(name + ".npy", out.detach().numpy())
"""

GLUON_EXTRA = """
import numpy as np
np.savez("readme.npz", logits=logits.asnumpy())
for name, (layer, embed) in {"gru": (rnn.GRU(5, num_layers=2), 0),
                             "lstm": (rnn.LSTM(4, num_layers=2, bidirectional=True), 3)}.items():
    plain = Plain(layer, vocab_size=7, embed_size=embed)
    plain.load_parameters(name + ".params")
    ids = nd.array(np.load("ids.npy"))
    out, _ = plain(ids, *plain.rnn.begin_state(batch_size=ids.shape[1]))
    np.save(name + ".npy", out.asnumpy())
"""


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["torch", "gluon"])
def test_exports_load_into_the_readme_modules(fmt: str, tmp_path: Path) -> None:
    require_backend("torch" if fmt == "torch" else "mxnet")
    ext = "pt" if fmt == "torch" else "params"
    (tmp_path / f"lm.{ext}").write_text("an older file, replaced with overwrite=True")
    convert_in_one_process([("export", {"checkpoint": str(checkpoint(tmp_path, spec, name)), "to": fmt,
                                        "out": str(tmp_path / f"{name}.{ext}"), "overwrite": name == "lm"})
                            for name, spec in (("lm", README_LM), ("gru", GRU), ("lstm", BI_LSTM))])
    assert not list(tmp_path.glob(".*")), "a temp file was left beside --out"
    ids = np.random.default_rng(4).integers(0, 7, (5, 3))
    np.save(tmp_path / "ids.npy", ids)
    definition, usage = readme_snippet(f"plain-{fmt}")
    script = tmp_path / "plain.py"
    script.write_text(definition + usage + (TORCH_EXTRA if fmt == "torch" else GLUON_EXTRA))
    python(str(script), cwd=tmp_path, check=True)

    readme_ids = np.array([[3], [5], [1]])
    expected, _ = reference.forward(README_LM, _wide(init_params(README_LM, "uniform", 1)), readme_ids)
    np.testing.assert_allclose(np.load(tmp_path / "readme.npz")["logits"], expected, atol=TOLERANCE)
    for name, spec in (("gru", GRU), ("lstm", BI_LSTM)):
        expected, _ = reference.forward(spec, _wide(init_params(spec, "uniform", 1)), ids)
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), expected, atol=TOLERANCE)


def _wide(params: dict) -> dict:
    return {k: v.astype(np.float64) for k, v in params.items()}


# -- import: a model trained with plain Gluon, run by seqcore on PyTorch ------------------------

GLUON_TRAINING = """
import sys
import mxnet as mx
import numpy as np
from mxnet import autograd
mx.random.seed(0)
rng = np.random.default_rng(0)
layers = {"gru": (rnn.GRU(6, num_layers=2), 0), "lstm": (rnn.LSTM(5), 4),
          "bi-gru": (rnn.GRU(4, bidirectional=True), 3)}
for name, (layer, embed) in layers.items():
    model = Plain(layer, vocab_size=8, embed_size=embed)
    model.initialize(mx.init.Uniform(0.3))
    trainer = gluon.Trainer(model.collect_params(), "sgd", {"learning_rate": 0.5})
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    for step in range(3):
        X, Y = nd.array(rng.integers(0, 8, (5, 4))), nd.array(rng.integers(0, 8, (5, 4)))
        with autograd.record():
            out, _ = model(X, *model.rnn.begin_state(batch_size=4))
            value = loss(out, Y).mean()
        value.backward()
        trainer.step(1)
    model.save_parameters(name + ".params")
    ids = rng.integers(0, 8, (6, 3))
    begin = [nd.array(rng.standard_normal(s.shape) * 0.5) for s in model.rnn.begin_state(batch_size=3)]
    logits, final = model(nd.array(ids), *begin)
    np.savez(name + ".npz", ids=ids, logits=logits.asnumpy(), *[b.asnumpy() for b in begin])

# The d2l book's MXNet RNNModel: NumPy mode, gluon.rnn.RNN's default (relu), the output layer
# called `dense` and fed (T*N, H), batch-major ids transposed inside.
from mxnet import npx
npx.set_np()

class RNNModel(nn.Block):
    def __init__(self, rnn_layer, vocab_size, **kwargs):
        super().__init__(**kwargs)
        self.rnn, self.vocab_size = rnn_layer, vocab_size
        self.dense = nn.Dense(vocab_size)

    def forward(self, inputs, state):
        Y, state = self.rnn(npx.one_hot(inputs.T, self.vocab_size), state)
        return self.dense(Y.reshape(-1, Y.shape[-1])), state

book = RNNModel(rnn.RNN(6), 8)
book.initialize(mx.init.Normal(0.3))
ids = rng.integers(0, 8, (3, 4))  # (N, T), as the book feeds it
logits, _ = book(mx.np.array(ids), book.rnn.begin_state(batch_size=3))
book.save_parameters("book.params")
np.savez("book.npz", np.zeros((1, 3, 6), np.float32), ids=ids.T, logits=logits.asnumpy().reshape(4, 3, 8))
"""

TORCH_RUN = """
import sys
import numpy as np
from seqcore.backend import load_backend
from seqcore.run.checkpoint import load_checkpoint
from seqcore.backend import Device
backend = load_backend("torch")
for name in sys.argv[1:]:
    saved, data = load_checkpoint(name + ".safetensors"), np.load(name + ".npz")
    model = backend.build_model(saved.model_spec, saved.params, backend.resolve_device(Device.CPU))
    state = backend.state_from_numpy(model, [data[k] for k in sorted(data) if k.startswith("arr_")])
    logits, _ = backend.forward(model, data["ids"], state)
    np.save(name + ".npy", logits)
"""


@pytest.mark.slow
def test_a_plain_gluon_model_runs_in_seqcore_on_torch(tmp_path: Path) -> None:
    """The guide's Gluon block trained for 3 SGD steps and saved with save_parameters, and the
    d2l book's own RNNModel, imported (all of it read from the file's shapes), give Gluon's
    logits in the NumPy reference and in seqcore's PyTorch backend."""
    require_backend("mxnet")
    require_backend("torch")
    definition, _ = readme_snippet("plain-gluon")
    (tmp_path / "train.py").write_text(definition + GLUON_TRAINING)
    python(str(tmp_path / "train.py"), cwd=tmp_path, check=True)
    names = ("gru", "lstm", "bi-gru", "book")
    convert("--from-gluon", str(tmp_path / "gru.params"), "--cell", "gru", "--hidden-size", "6",
            "--out", str(tmp_path / "gru.safetensors"))
    convert_in_one_process([("import_weights", {"source": str(tmp_path / f"{name}.params"), "fmt": "gluon",
                                                "out": str(tmp_path / f"{name}.safetensors")})
                            for name in names[1:]])
    for name in names:
        saved, data = load_checkpoint(tmp_path / f"{name}.safetensors"), np.load(tmp_path / f"{name}.npz")
        state = tuple(data[k].astype(np.float64) for k in sorted(data) if k.startswith("arr_"))
        expected, _ = reference.forward(saved.model_spec, _wide(saved.params), data["ids"], state)
        np.testing.assert_allclose(data["logits"], expected, atol=TOLERANCE)  # the import is exact
    (tmp_path / "run.py").write_text(TORCH_RUN)
    python(str(tmp_path / "run.py"), *names, cwd=tmp_path, check=True)
    for name in names:
        np.testing.assert_allclose(np.load(tmp_path / f"{name}.npy"), np.load(tmp_path / f"{name}.npz")["logits"],
                                   atol=TOLERANCE)
    assert load_checkpoint(tmp_path / "lstm.safetensors").model_spec.input_kind.value == "embedding"
    assert load_checkpoint(tmp_path / "bi-gru.safetensors").model_spec.bidirectional
    assert load_checkpoint(tmp_path / "book.safetensors").model_spec.activation.value == "relu"  # Gluon's default


# -- ONNX ------------------------------------------------------------------------------------------

ONNX_RUN = """
import sys
import numpy as np
import onnxruntime
session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
print(",".join(i.name for i in session.get_inputs()), ",".join(o.name for o in session.get_outputs()))
data = np.load(sys.argv[2])
outputs = session.run(None, {"inputs": data["ids"], "h0": data["h0"], "c0": data["c0"]})
np.savez(sys.argv[3], *outputs)
"""


@pytest.mark.slow
def test_onnx_export_matches_the_reference(tmp_path: Path) -> None:
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"the onnx extra is not installed ({', '.join(missing)} missing): pip install -e '.[onnx]'")
    require_backend("torch")
    spec = ModelSpec(cell="lstm", impl="concise", input_size=6, hidden_size=4, output_size=6, num_layers=2,
                     bidirectional=True)
    convert("--checkpoint", str(checkpoint(tmp_path, spec, "m")), "--to", "onnx", "--out", str(tmp_path / "m.onnx"))
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 6, (7, 5))  # other time and batch sizes than the export traced
    h0, c0 = (rng.standard_normal((4, 5, 4)).astype(np.float32) for _ in range(2))
    np.savez(tmp_path / "in.npz", ids=ids, h0=h0, c0=c0)
    (tmp_path / "run.py").write_text(ONNX_RUN)
    result = python(str(tmp_path / "run.py"), str(tmp_path / "m.onnx"), str(tmp_path / "in.npz"),
                    str(tmp_path / "out.npz"), check=True)
    assert result.stdout.split() == ["inputs,h0,c0", "logits,hn,cn"]
    logits, (hn, cn) = reference.forward(spec, _wide(init_params(spec, "uniform", 1)), ids,
                                         (h0.astype(np.float64), c0.astype(np.float64)))
    got = np.load(tmp_path / "out.npz")
    for index, expected in enumerate((logits, hn, cn)):
        np.testing.assert_allclose(got[f"arr_{index}"], expected, atol=TOLERANCE)


def test_onnx_without_the_extra_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tasks import convert as task

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SeqcoreError, match=re.escape("--to onnx needs onnx and onnxruntime: install the extra "
                                                     "with pip install -e '.[onnx]'.")):
        task.export(str(checkpoint(tmp_path, GRU, "m")), "onnx", str(tmp_path / "m.onnx"))
    assert not (tmp_path / "m.onnx").exists()


# -- a run trained on MXNet: exported, imported back, evaluated ---------------------------------

@pytest.mark.slow
def test_an_mxnet_run_goes_to_torch_and_back_to_evaluate(tmp_path: Path) -> None:
    """Trained on MXNet, exported as a state_dict and a .params file (each checked by the
    converter against the reference in the plain module), imported back with its vocabulary,
    and evaluated on PyTorch: the validation perplexity MXNet logged."""
    require_backend("mxnet")
    require_backend("torch")
    python("-m", "tasks.char_lm", "--backend", "mxnet", "--device", "cpu", "--epochs", "1", "--max-tokens", "600",
           "--batch-size", "4", "--num-steps", "5", "--hidden-size", "8", "--cell", "gru", "--no-progress",
           "--num-preds", "5", "--out", str(tmp_path / "run"), check=True)
    convert("--checkpoint", str(tmp_path / "run"), "--to", "gluon", "--out", str(tmp_path / "lm.params"))
    saved = load_checkpoint(tmp_path / "run" / "model.safetensors")
    (tmp_path / "vocab.json").write_text(json.dumps(saved.vocab["idx_to_token"]))
    convert_in_one_process([
        ("export", {"checkpoint": str(tmp_path / "run"), "to": "torch", "out": str(tmp_path / "lm.pt")}),
        ("import_weights", {"source": str(tmp_path / "lm.pt"), "fmt": "torch", "out": str(tmp_path / "back.safetensors"),
                            "vocab": str(tmp_path / "vocab.json"), "max_tokens": 600})])
    back = load_checkpoint(tmp_path / "back.safetensors")
    assert all(np.array_equal(back.params[k], saved.params[k]) for k in saved.params)
    result = python("-m", "tasks.evaluate", "--checkpoint", str(tmp_path / "back.safetensors"), "--backend", "torch",
                    "--device", "cpu", "--batch-size", "4", "--num-steps", "5", "--num-preds", "1", "--json",
                    check=True)
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().strip().splitlines()[-1])
    assert logged["kind"] == "summary" and logged["backend"] == "mxnet"
    assert json.loads(result.stdout)["val_ppl"] == pytest.approx(logged["val_ppl"], rel=1e-5)


# -- bad input: one sentence, exit 2, nothing written --------------------------------------------

BAD_TORCH_FILES = """
import torch
from torch import nn
good = {"rnn.weight_ih_l0": torch.zeros(12, 5), "rnn.weight_hh_l0": torch.zeros(12, 4),
        "rnn.bias_ih_l0": torch.zeros(12), "rnn.bias_hh_l0": torch.zeros(12),
        "head.weight": torch.zeros(5, 4), "head.bias": torch.zeros(5)}
torch.save(good, "gru.pt")
torch.save({k: v for k, v in good.items() if k != "head.bias"}, "missing.pt")
torch.save({**good, "extra.weight": torch.zeros(2)}, "extra.pt")
torch.save({**good, "head.weight": torch.zeros(5, 6)}, "shape.pt")
torch.save({**good, "head.bias": torch.zeros(5, dtype=torch.int32)}, "ints.pt")
torch.save(nn.GRU(5, 4), "module.pt")
"""

# (id, argv, fragment, where): "cli" runs the command line in its own process; "worker" runs it
# through run_main in one shared PyTorch process (one torch import for all of them, same checks).
BAD_CASES = [
    ("another-cell", ["--from-torch", "gru.pt", "--cell", "lstm"], "holds a GRU", "cli"),
    ("hidden-size", ["--from-torch", "gru.pt", "--hidden-size", "8"], "holds 4 hidden units", "worker"),
    ("missing-key", ["--from-torch", "missing.pt"], "it lacks head.bias", "worker"),
    ("extra-key", ["--from-torch", "extra.pt"], "it has unexpected extra.weight", "worker"),
    ("wrong-shape", ["--from-torch", "shape.pt"], "head.weight has shape (5, 6)", "worker"),
    ("int-weights", ["--from-torch", "ints.pt"], "head.bias is int32, not floating point", "worker"),
    ("pickled-module", ["--from-torch", "module.pt"], "holds more than tensors", "worker"),
    ("truncated", ["--from-torch", "truncated.pt"], "is not a PyTorch state_dict file", "worker"),
    ("text-file", ["--from-torch", "notes.txt"], "not a file torch.save wrote", "worker"),
    ("a-folder", ["--from-torch", "."], "No PyTorch weight file at", "worker"),
    ("vocab-does-not-fit", ["--from-torch", "gru.pt", "--vocab", "vocab.json"],
     "lists 3 tokens, but the weights read 5", "worker"),
    ("gluon-not-params", ["--from-gluon", "gru.pt"], "is not a Gluon parameter file", "cli"),
    ("out-exists", ["--from-torch", "gru.pt", "--out", "notes.txt"], "exists; add --overwrite", "cli"),
    ("out-folder", ["--checkpoint", "gru.safetensors", "--to", "torch", "--out", "."], "is a folder", "cli"),
    ("import-flag-on-export", ["--checkpoint", "gru.safetensors", "--to", "torch", "--cell", "gru"],
     "--cell is for importing", "cli"),
    ("no-target", ["--checkpoint", "gru.safetensors"], "--checkpoint needs --to", "cli"),
    ("out-under-a-file", ["--checkpoint", "gru.safetensors", "--to", "torch", "--out", "notes.txt/lm.pt"],
     "cannot be written", "worker"),
    ("books-gru", ["--checkpoint", "before.safetensors", "--to", "gluon"], "reset gate before the hidden matmul", "cli"),
]

CASE_RUNNER = """
import contextlib, io, json, sys, traceback
from tasks.cli import run_main
from tasks.convert import main
results = {}
for name, argv in json.loads(sys.argv[1]).items():
    stderr, code = io.StringIO(), None
    with contextlib.redirect_stderr(stderr):
        try:
            run_main(main, argv)
        except SystemExit as stop:
            code = stop.code
        except BaseException:
            traceback.print_exc()
    results[name] = [code, stderr.getvalue()]
print(json.dumps(results))
"""


def _argv(argv: list[str]) -> list[str]:
    return argv if "--out" in argv else [*argv, "--out", "new.safetensors"]


def _listing(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_backend("torch")
    folder = tmp_path_factory.mktemp("convert-bad")
    (folder / "make.py").write_text(BAD_TORCH_FILES)
    python(str(folder / "make.py"), cwd=folder, check=True)
    (folder / "truncated.pt").write_bytes((folder / "gru.pt").read_bytes()[:300])
    (folder / "notes.txt").write_text("my notes\n")
    (folder / "vocab.json").write_text(json.dumps(["<unk>", "a", "b"]))
    (folder / "runner.py").write_text(CASE_RUNNER)
    checkpoint(folder, GRU, "gru")
    before = ModelSpec(cell="gru", impl="scratch", input_size=5, hidden_size=4, output_size=5, gru_reset="before")
    checkpoint(folder, before, "before")
    return folder


@pytest.fixture(scope="module")
def worker_results(bad_files: Path) -> tuple[dict, bool]:
    """Every "worker" case's (exit status, stderr), and whether the folder stayed as it was."""
    cases = {name: _argv(argv) for name, argv, _, where in BAD_CASES if where == "worker"}
    before = _listing(bad_files)
    result = python(str(bad_files / "runner.py"), json.dumps(cases), cwd=bad_files, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1]), _listing(bad_files) == before


@pytest.mark.slow
@pytest.mark.parametrize("name, argv, fragment, where", BAD_CASES, ids=[case[0] for case in BAD_CASES])
def test_bad_input_is_refused_in_one_sentence(bad_files: Path, worker_results, name: str, argv: list[str],
                                              fragment: str, where: str) -> None:
    if where == "worker":
        results, untouched = worker_results
        code, stderr = results[name]
        result = subprocess.CompletedProcess([], code, "", stderr)
    else:
        if "gluon" in name:
            require_backend("mxnet")
        before = _listing(bad_files)
        result = python("-m", "tasks.convert", *_argv(argv), cwd=bad_files)
        untouched = _listing(bad_files) == before
    assert_one_sentence(result, fragment)
    assert untouched, "a refused conversion wrote or left a file"
