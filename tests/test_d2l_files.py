"""The d2l book's saved models and vocabularies, read without the book or a framework.

The book's scratch cells are written out below from its text (0.17's `rnn`, `gru`, `lstm`; 1.0's
RNNScratch, GRUScratch, LSTMScratch, each with `W_hq`, `b_q` on top); seqcore's reading of their
arrays must give the same logits. tests/test_d2l.py does the same against the real package.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seqcore.data.corpus import load_corpus
from seqcore.data.vocab import Order, Vocab
from seqcore.errors import SeqcoreError
from seqcore.interchange import to_foreign
from seqcore.interchange.d2l import book_names, is_scratch, scratch_params, with_hidden_bias
from seqcore.interchange.vocabulary import check_vocab_fits, fit_vocab, read_vocab_file
from seqcore.model import reference
from seqcore.model.params import init_params
from seqcore.model.spec import Bias, Cell, GRUReset, Impl, ModelSpec

V, H = 7, 5
GET_PARAMS = {  # 0.17's get_params order
    "rnn": ["W_xh", "W_hh", "b_h", "W_hq", "b_q"],
    "gru": ["W_xz", "W_hz", "b_z", "W_xr", "W_hr", "b_r", "W_xh", "W_hh", "b_h", "W_hq", "b_q"],
    "lstm": ["W_xi", "W_hi", "b_i", "W_xf", "W_hf", "b_f", "W_xo", "W_ho", "b_o", "W_xc", "W_hc", "b_c", "W_hq", "b_q"],
}


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def book_forward(cell: str, p: dict, ids: np.ndarray) -> np.ndarray:
    """The book's scratch model on (T, N) ids: one-hot, the cell's equations as printed, W_hq, b_q."""
    X = np.eye(V)[ids]
    H_ = np.zeros((ids.shape[1], H))
    C = np.zeros_like(H_)
    outputs = []
    for x in X:
        if cell == "rnn":
            H_ = np.tanh(x @ p["W_xh"] + H_ @ p["W_hh"] + p["b_h"])
        elif cell == "gru":
            Z = sigmoid(x @ p["W_xz"] + H_ @ p["W_hz"] + p["b_z"])
            R = sigmoid(x @ p["W_xr"] + H_ @ p["W_hr"] + p["b_r"])
            H_tilda = np.tanh(x @ p["W_xh"] + (R * H_) @ p["W_hh"] + p["b_h"])
            H_ = Z * H_ + (1 - Z) * H_tilda
        else:
            I = sigmoid(x @ p["W_xi"] + H_ @ p["W_hi"] + p["b_i"])
            F = sigmoid(x @ p["W_xf"] + H_ @ p["W_hf"] + p["b_f"])
            O = sigmoid(x @ p["W_xo"] + H_ @ p["W_ho"] + p["b_o"])
            C_tilda = np.tanh(x @ p["W_xc"] + H_ @ p["W_hc"] + p["b_c"])
            C = F * C + I * C_tilda
            H_ = O * np.tanh(C)
        outputs.append(H_ @ p["W_hq"] + p["b_q"])
    return np.stack(outputs)


def book_arrays(cell: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(((V if name.startswith("W_x") else H), (V if name == "W_hq" else H))
                                      if name.startswith("W") else (V if name == "b_q" else H)).astype(np.float32)
            for name in GET_PARAMS[cell]}


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layout", ["0.17-list", "1.0-state_dict", "1.0-list"])
def test_the_books_scratch_models_read_as_they_compute(cell: str, layout: str) -> None:
    arrays = book_arrays(cell)
    if layout == "0.17-list":  # torch.save(net.params) / npx.save(path, net.params)
        saved = [arrays[name] for name in GET_PARAMS[cell]]
    elif layout == "1.0-state_dict":  # RNNLMScratch's state_dict: the cell's arrays under rnn.
        saved = {(name if name in ("W_hq", "b_q") else f"rnn.{name}"): value for name, value in arrays.items()}
    else:  # 1.0 MXNet's get_scratch_params(): W_hq, b_q, then the cell's in dir() order
        saved = [arrays["W_hq"], arrays["b_q"]] + [arrays[n] for n in sorted(set(arrays) - {"W_hq", "b_q"})]
    assert is_scratch(saved)
    spec, params, edition = scratch_params(saved, "f")
    assert edition == layout.split("-")[0]
    assert spec.cell is Cell(cell) and spec.impl is Impl.SCRATCH and spec.bias is Bias.INPUT
    assert spec.gru_reset is (GRUReset.BEFORE if cell == "gru" else GRUReset.AFTER)
    assert (spec.input_size, spec.hidden_size, spec.output_size) == (V, H, V)
    ids = np.random.default_rng(1).integers(0, V, (6, 3))
    wide = {k: v.astype(np.float64) for k, v in params.items()}
    np.testing.assert_allclose(reference.forward(spec, wide, ids)[0],
                               book_forward(cell, {k: v.astype(np.float64) for k, v in arrays.items()}, ids),
                               rtol=1e-10, atol=1e-10)


def test_the_books_scratch_files_that_do_not_fit_are_named() -> None:
    arrays = book_arrays("gru")
    with pytest.raises(SeqcoreError, match="holds a list of 4 arrays; the book's scratch models save 5"):
        scratch_params([arrays["W_xz"]] * 4, "f")
    with pytest.raises(SeqcoreError, match=r"not the \[2, 2, 1, 2, 2, 1, 2, 2, 1, 2, 1\] of d2l 0.17's scratch GRU"):
        scratch_params([arrays[n] for n in GET_PARAMS["gru"][::-1]][:1] + [arrays[n] for n in GET_PARAMS["gru"]][1:], "f")
    named = {f"rnn.{k}": v for k, v in arrays.items() if k not in ("W_hq", "b_q", "b_r")}
    with pytest.raises(SeqcoreError, match="scratch names for a GRU .* but lacks W_hq, b_q, b_r"):
        scratch_params(named, "f")
    bad = dict(arrays, W_hh=np.zeros((H, H + 1), np.float32))
    with pytest.raises(SeqcoreError, match=r"f's W_hh has shape \(5, 6\), but W_hq \(5, 7\)"):
        scratch_params({k if k in ("W_hq", "b_q") else f"rnn.{k}": v for k, v in bad.items()}, "f")
    with pytest.raises(SeqcoreError, match="holds non-finite values"):
        scratch_params([*(arrays[n] for n in GET_PARAMS["gru"][:-1]), np.full(V, np.nan, np.float32)], "f")


@pytest.mark.parametrize("fmt, head", [("torch", "linear"), ("gluon", "dense"), ("gluon", "linear")])
def test_the_books_concise_names_are_the_plain_modules(fmt: str, head: str) -> None:
    spec = ModelSpec(cell="lstm", impl="concise", input_size=V, hidden_size=H, output_size=V)
    plain = to_foreign(spec, init_params(spec), fmt)
    book = {name.replace("head.", head + "."): value for name, value in plain.items()}
    assert book_names(book, fmt) == (plain, "0.17")
    rnnlm = {("rnn." + name if name.startswith("rnn.") else name): value for name, value in book.items()}
    assert book_names(rnnlm, fmt) == (plain, "1.0")  # d2l 1.0's RNNLM: the d2l.RNN wrapper's extra level
    assert book_names(plain, fmt) == (plain, None)


def test_a_one_bias_model_is_written_with_zero_hidden_biases() -> None:
    spec = ModelSpec(cell="rnn", impl="scratch", input_size=V, hidden_size=H, output_size=V, bias="input")
    params = init_params(spec, "normal")
    full, wide = with_hidden_bias(spec, params)
    assert full.bias is Bias.BOTH and not np.any(wide["rnn.l0.bias_hh"])
    ids = np.random.default_rng(0).integers(0, V, (4, 2))
    np.testing.assert_array_equal(reference.forward(full, wide, ids)[0], reference.forward(spec, params, ids)[0])
    assert "rnn.bias_hh_l0" in to_foreign(spec, params, "torch")


# -- vocabulary files -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chars() -> list[str]:
    return load_corpus()


def test_vocabulary_files_as_the_book_saves_them(tmp_path: Path, chars: list[str]) -> None:
    book017 = Vocab(chars).idx_to_token
    (tmp_path / "list.json").write_text(json.dumps(book017))
    (tmp_path / "dict.json").write_text(json.dumps({t: i for i, t in enumerate(book017)}))
    text = load_corpus(preprocessing="text")
    book10 = sorted(set(text) | {"<unk>"})  # d2l 1.0: sorted(set(['<unk>'] + tokens))
    (tmp_path / "sorted.json").write_text(json.dumps(book10))
    orders = list(Order)
    for name in ("list", "dict"):
        vocab = fit_vocab(read_vocab_file(tmp_path / f"{name}.json"), name, chars, "tm", orders)
        assert vocab.idx_to_token == book017 and vocab.order is Order.FREQUENCY
    vocab = fit_vocab(read_vocab_file(tmp_path / "sorted.json"), "sorted", text, "tm", orders)
    assert vocab.order is Order.ALPHABETICAL and vocab.unk == 1 and vocab.idx_to_token[:3] == [" ", "<unk>", "a"]
    check_vocab_fits(28, "sorted", ModelSpec(cell="rnn", impl="concise", input_size=28, hidden_size=2, output_size=28))


def test_vocabulary_files_that_do_not_fit_are_named(tmp_path: Path, chars: list[str]) -> None:
    def write(name: str, data) -> Path:
        (tmp_path / name).write_text(json.dumps(data))
        return tmp_path / name

    table = Vocab(chars).idx_to_token
    swapped = table[:5] + [table[6], table[5]] + table[7:]
    with pytest.raises(SeqcoreError, match=r"in an order none of the rules \(frequency, frequency-alphabetical, "
                                           r"alphabetical\) gives: index 5 is 'n'"):
        fit_vocab(read_vocab_file(write("swapped.json", swapped)), "swapped.json", chars, "tm", list(Order))
    with pytest.raises(SeqcoreError, match="tokens only in the file: 'zz'; only in the corpus: 'q'"):
        fit_vocab(read_vocab_file(write("other.json", table[:-1] + ["zz"])), "other.json", chars, "tm", list(Order))
    with pytest.raises(SeqcoreError, match="maps 2 tokens to indices that are not 0 .. 1"):
        read_vocab_file(write("gap.json", {"<unk>": 0, "a": 2}))
    with pytest.raises(SeqcoreError, match="neither a seqcore vocabulary nor d2l's token_to_idx"):
        read_vocab_file(write("object.json", {"idx_to_token": table}))
    with pytest.raises(SeqcoreError, match="is not JSON"):
        (tmp_path / "bad.json").write_text("[")
        read_vocab_file(tmp_path / "bad.json")
    with pytest.raises(SeqcoreError, match="lists 28 tokens, but the weights read 7"):
        check_vocab_fits(28, "v", ModelSpec(cell="rnn", impl="concise", input_size=V, hidden_size=2, output_size=V))
