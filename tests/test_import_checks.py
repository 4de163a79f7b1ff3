"""What tasks.convert checks when it imports a language model: the RNN's nonlinearity (which no
weight file records) against the validation text, a missing vocabulary, --max-tokens 0, and
foreign tensors that are not plain dense arrays."""
from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest

from seqcore.data.corpus import load_corpus
from seqcore.data.vocab import Vocab
from seqcore.errors import SeqcoreError
from seqcore.jobs.imported import SEQCORE_DATA, measured
from seqcore.jobs.lm import prepare_data
from seqcore.model.spec import ModelSpec
from seqcore.run.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from tests.conftest import assert_one_sentence, python, require_backend


def bigram_rnn() -> tuple[ModelSpec, dict, Vocab]:
    """An RNN that is a bigram model of the training text with relu (h = 10 + 5 onehot, a linear
    read of it) and nearly blind with tanh (every unit saturates at 1): the nonlinearity decides."""
    tokens = load_corpus()
    vocab = Vocab(tokens)
    ids = vocab.encode(tokens[:10_000])
    size = len(vocab)
    counts = np.ones((size, size))  # add-one smoothing
    for (a, b), n in collections.Counter(zip(ids[:-1], ids[1:])).items():
        counts[a, b] += n
    log_p = np.log(counts / counts.sum(axis=1, keepdims=True))  # (V, V): log P(next | current)
    spec = ModelSpec(cell="rnn", impl="concise", input_size=size, hidden_size=size, output_size=size,
                     activation="relu")
    head = log_p.T / 5  # logits = head (10 + 5 onehot) + bias = log P(. | current)
    params = {"rnn.l0.weight_ih": 5 * np.eye(size), "rnn.l0.weight_hh": np.zeros((size, size)),
              "rnn.l0.bias_ih": np.full(size, 10.0), "rnn.l0.bias_hh": np.zeros(size),
              "head.weight": head, "head.bias": -10 * head.sum(axis=1)}
    return spec, {k: v.astype(np.float32) for k, v in params.items()}, vocab


def test_the_wrong_nonlinearity_is_measured_and_refused() -> None:
    spec, params, _ = bigram_rnn()
    val = prepare_data(None, "char", 10_000, 0.1, 32, 35).val_ids
    relu = measured(spec, params, val, SEQCORE_DATA, "f", None, "gluon")
    assert 5 < relu < 15  # a bigram model of the book
    tanh = ModelSpec.from_dict({**spec.to_dict(), "activation": "tanh"})
    with pytest.raises(SeqcoreError, match=r"f gives validation perplexity [0-9.e+]+ with tanh but "
                                           r"[0-9.]+ with relu, so it was trained with relu: give "
                                           r"--activation relu or leave --activation out\."):
        measured(tanh, params, val, SEQCORE_DATA, "f", "tanh", "gluon")
    with pytest.raises(SeqcoreError, match=r"so it was trained with relu: give --activation relu\.$"):
        measured(tanh, params, val, SEQCORE_DATA, "f", None, "torch")  # PyTorch's default is tanh


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """The bigram RNN as a PyTorch state_dict, its vocabulary, and tensors that are not weights."""
    require_backend("torch")
    folder = tmp_path_factory.mktemp("imports")
    spec, params, vocab = bigram_rnn()
    save_checkpoint(folder / "bigram.safetensors", Checkpoint(model_spec=spec, params=params, vocab=vocab.to_dict()))
    python("-m", "tasks.convert", "--checkpoint", str(folder / "bigram.safetensors"), "--to", "torch",
           "--out", str(folder / "bigram.pt"), check=True)
    (folder / "vocab.json").write_text(json.dumps(vocab.idx_to_token))
    (folder / "make.py").write_text(
        "import torch\n"
        "state = torch.load('bigram.pt')\n"
        "torch.save({**state, 'head.bias': state['head.bias'].to_sparse()}, 'sparse.pt')\n"
        "torch.save({**state, 'head.weight': torch.empty(28, 28, device='meta')}, 'meta.pt')\n")
    python(str(folder / "make.py"), cwd=folder, check=True)
    return folder


def convert(folder: Path, *argv: str):
    return python("-m", "tasks.convert", *argv, cwd=folder)


@pytest.mark.parametrize("argv, fragment", [
    (["--vocab", "vocab.json"], "with tanh but"),  # PyTorch's default nonlinearity, measured worse
    (["--vocab", "vocab.json", "--activation", "tanh"], "so it was trained with relu: give --activation relu."),
    (["--vocab", "vocab.json", "--max-tokens", "-1"], "--max-tokens must be zero or more, got -1"),
    (["--preset", "d2l-1.0"], "--preset only matters for a language model: give its --vocab too"),
])
def test_imports_that_do_not_fit_are_refused(files: Path, argv: list[str], fragment: str) -> None:
    result = convert(files, "--from-torch", "bigram.pt", "--out", "new.safetensors", *argv)
    assert_one_sentence(result, fragment)
    assert not (files / "new.safetensors").exists()


def test_the_right_nonlinearity_and_all_of_the_text(files: Path) -> None:
    result = convert(files, "--from-torch", "bigram.pt", "--vocab", "vocab.json", "--activation", "relu",
                     "--max-tokens", "0", "--out", "relu.safetensors")
    assert result.returncode == 0, result.stderr
    assert "validation perplexity" in result.stdout
    saved = load_checkpoint(files / "relu.safetensors")
    assert saved.model_spec.activation.value == "relu"
    assert saved.data_spec.max_tokens is None and saved.data_spec.preprocess == "lines"  # 0: all, as char_lm
    assert saved.provenance["batch_size"] == 32 and saved.provenance["num_steps"] == 35


def test_an_import_without_vocabulary_says_what_it_is(files: Path) -> None:
    result = convert(files, "--from-torch", "bigram.pt", "--activation", "relu", "--out", "bare.safetensors")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "is not a language-model checkpoint" in notes[0] and "--vocab FILE" in notes[0]
    refused = python("-m", "tasks.evaluate", "--checkpoint", str(files / "bare.safetensors"), "--backend", "torch")
    assert_one_sentence(refused, "is not a language-model checkpoint (it has no vocabulary); it was imported from",
                        "without --vocab: import it again with --vocab FILE")


@pytest.mark.parametrize("name, fragment", [
    ("sparse.pt", "sparse.pt's head.bias is a sparse tensor (sparse_coo); model weights are dense"),
    ("meta.pt", "meta.pt's head.weight is a meta tensor (a shape without values"),
])
def test_tensors_that_are_not_weights_are_refused(files: Path, name: str, fragment: str) -> None:
    assert_one_sentence(convert(files, "--from-torch", name, "--out", "new.safetensors"), fragment)


def test_a_sparse_gluon_array_is_refused(tmp_path: Path) -> None:
    require_backend("mxnet")
    (tmp_path / "make.py").write_text(
        "import mxnet as mx\n"
        "mx.nd.save('sparse.params', {'rnn.l0.weight': mx.nd.zeros((4, 3)).tostype('row_sparse')})\n")
    python(str(tmp_path / "make.py"), cwd=tmp_path, check=True)
    result = python("-m", "tasks.convert", "--from-gluon", "sparse.params", "--out", "x.safetensors", cwd=tmp_path)
    assert_one_sentence(result, "sparse.params's rnn.l0.weight is a sparse array (row_sparse)")
