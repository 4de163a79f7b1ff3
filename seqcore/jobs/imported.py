"""An imported language model's data: which text, vocabulary order and validation it was trained
beside (seqcore's defaults, or a d2l edition's), checked against the file before anything is written.

tasks.convert calls these after reading the weights: the vocabulary file must be the corpus's under
one of the order rules, and a plain RNN's nonlinearity, which no weight file records, must be the
one that fits the validation text.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from seqcore.data.corpus import Preprocess, load_corpus
from seqcore.data.sampling import Sampler
from seqcore.data.spec import TIME_MACHINE, Corpus, CorpusSpec
from seqcore.data.vocab import Order, Vocab
from seqcore.errors import SeqcoreError
from seqcore.interchange import DEFAULT_ACTIVATION
from seqcore.interchange.vocabulary import check_vocab_fits, fit_vocab, read_vocab_file
from seqcore.jobs.lm import reference_perplexity
from seqcore.jobs.presets import D2L_017, D2L_10, PRESETS, preset_values
from seqcore.model.spec import Activation, Cell, InputKind, ModelSpec, Readout

DATA_FIELDS = ("token", "max_tokens", "val_fraction", "preprocess", "vocab_order", "train_windows",
               "val_windows", "sampler", "batch_size", "num_steps")
SEQCORE_DATA = {"token": "char", "max_tokens": 10_000, "val_fraction": 0.1, "preprocess": Preprocess.LINES.value,
                "vocab_order": Order.FREQUENCY.value, "train_windows": None, "val_windows": None,
                "sampler": Sampler.SEQUENTIAL.value, "batch_size": 32, "num_steps": 35}
# A nonlinearity whose validation perplexity is this much below the chosen one's is the one the
# model was trained with (an untrained or a well-fitted model scores both within a few percent).
ACTIVATION_MARGIN = 1.1


def edition_preset(edition: Optional[str]) -> Optional[str]:
    """The preset of the d2l edition a file's layout shows (None: seqcore's own data)."""
    return {"0.17": D2L_017, "1.0": D2L_10}.get(edition or "")


def check_lm_flags(vocab: Optional[str], corpus: Optional[str], max_tokens: Optional[int],
                   val_fraction: Optional[float], preset: Optional[str] = None) -> None:
    if vocab is None and (corpus is not None or preset is not None):
        flag = "--corpus" if corpus is not None else "--preset"
        raise SeqcoreError(f"{flag} only matters for a language model: give its --vocab too.")
    if corpus is not None and not Path(corpus).is_file():
        raise SeqcoreError(f"--corpus {corpus} is not a file (give a local text file; the default is the "
                           f"bundled Time Machine).")
    if max_tokens is not None and max_tokens < 0:
        raise SeqcoreError(f"--max-tokens must be zero (all) or more, got {max_tokens}.")
    if val_fraction is not None and not 0 <= val_fraction < 1:
        raise SeqcoreError(f"--val-fraction must be in [0, 1), got {val_fraction}.")
    if preset is not None and preset not in PRESETS:
        raise SeqcoreError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}.")


def check_scratch_flags(spec: ModelSpec, source: str, **given: Any) -> None:
    """Flags given for the book's scratch model must say what its arrays hold."""
    found = {"cell": spec.cell.value, "hidden_size": spec.hidden_size, "num_layers": 1, "bidirectional": False,
             "input_kind": InputKind.ONEHOT.value, "activation": Activation.TANH.value,
             "readout": Readout.SEQUENCE.value}
    for name, value in given.items():
        if value is not None and value != found[name] and not (name == "bidirectional" and value is False):
            flag = "--input" if name == "input_kind" else "--" + name.replace("_", "-")
            raise SeqcoreError(f"{source} holds the d2l book's scratch {spec.cell.value.upper()} of {spec.hidden_size} "
                               f"hidden units ({found[name]} for {flag}), not the {value} that {flag} says.")


def data_description(preset: Optional[str], backend: str, spec: ModelSpec, **given: Any) -> dict[str, Any]:
    """The data fields of the edition (`preset`, else seqcore's), those given (not None) winning."""
    base = dict(SEQCORE_DATA)
    if preset is not None:
        values = preset_values(preset, backend, spec.cell.value, spec.impl.value)
        base.update({key: values[key] for key in DATA_FIELDS if key in values})
    base.update({key: value for key, value in given.items() if value is not None})
    base["max_tokens"] = base["max_tokens"] or None  # 0: all of the text, as char_lm takes it
    return base


def lm_data(vocab_path: str, spec: ModelSpec, backend: str, *, corpus: Optional[str], token: Optional[str],
            max_tokens: Optional[int], val_fraction: Optional[float], preset: Optional[str]
            ) -> tuple[Vocab, Corpus, dict[str, Any]]:
    """The vocabulary (fitted to the corpus), the corpus tasks.evaluate will measure on as its data
    spec loads it (the order rule found, the edition's split), and the provenance entries of the
    sizes and sampler the edition read it with."""
    description = data_description(preset, backend, spec, token=token, max_tokens=max_tokens,
                                   val_fraction=val_fraction)
    found = read_vocab_file(vocab_path)
    check_vocab_fits(len(found), vocab_path, spec)
    tokens = load_corpus(corpus, description["token"], preprocessing=description["preprocess"])
    first = Order(description["vocab_order"])
    orders = [first] + [order for order in Order if order is not first]
    vocab = fit_vocab(found, vocab_path, tokens, corpus or "the Time Machine", orders)
    windows = None if description["train_windows"] is None else (
        description["train_windows"], description["val_windows"], description["num_steps"])
    data = CorpusSpec(source=corpus or TIME_MACHINE, token=description["token"], max_tokens=description["max_tokens"],
                      val_fraction=description["val_fraction"], preprocess=description["preprocess"],
                      vocab_order=vocab.order.value, windows=windows).load()
    sizes = {key: description[key] for key in ("batch_size", "num_steps", "sampler")}
    return vocab, data, {**sizes, "preset": preset}


def measured(spec: ModelSpec, params: Mapping[str, np.ndarray], val_ids: np.ndarray,
             description: Mapping[str, Any], source: str, given: Optional[str], fmt: str) -> float:
    """The validation perplexity of the imported model (NumPy reference). A plain RNN is measured
    under both nonlinearities too: its activation (given, else the framework's default) is
    refused when the other one fits the validation text clearly better."""
    measure = lambda model: reference_perplexity(model, params, val_ids, description["batch_size"],
                                                 description["num_steps"], description["sampler"])
    mine = measure(spec)
    if spec.cell is not Cell.RNN:
        return mine
    other = Activation.RELU if spec.activation is Activation.TANH else Activation.TANH
    theirs = measure(dataclasses.replace(spec, activation=other))
    if theirs * ACTIVATION_MARGIN < mine:
        how = f"give --activation {other.value}" + (" or leave --activation out" if given and
                                                   other is DEFAULT_ACTIVATION[fmt] else "")
        raise SeqcoreError(f"{source} gives validation perplexity {mine:.4g} with {spec.activation.value} but "
                           f"{theirs:.4g} with {other.value}, so it was trained with {other.value}: {how}.")
    return mine
