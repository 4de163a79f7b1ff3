"""Checkpoints of formats 1 and 2, read as format 3: their untyped `progress` dict becomes the
provenance, and the data spec is derived from the fields the tasks used to put there.

    corpus, corpus_hash, token, max_tokens, val_fraction    -> CorpusSpec   (char_lm)
    dataset, data_dir, num_train, num_test                  -> MnistSpec    (mnist_rows)
    mode, phase, iterations (+ the training spec's sizes)   -> SineSpec     (sine)
    source, target                                          -> HelloSpec    (hello)

A checkpoint without any of them (weights imported by tasks.convert without --vocab) has no data
spec. Fields that are there but of the wrong type are refused in one sentence naming the format.
MNIST's limits were not recorded, only the counts they left: a limit of exactly that count takes
the same first images, so the derived spec loads the same data (its identity is not compared on
a resume; the files' SHA-256 are, as before).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from seqcore.data.spec import CorpusSpec, DataSpec, HelloSpec, MnistSpec, SineSpec
from seqcore.data.vocab import Order
from seqcore.errors import SeqcoreError
from seqcore.train.spec import TrainSpec

LM_FIELDS = ("corpus", "token", "max_tokens", "val_fraction")
INEXACT = {"mnist": ("limit_train", "limit_test")}  # derived fields a resume compares by their counts


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _checked(path: Path, fmt: str, progress: Mapping[str, Any],
             checks: tuple[tuple[str, Callable[[Any], bool], str], ...]) -> None:
    for key, valid, wanted in checks:
        value = progress.get(key)
        if not valid(value):
            raise SeqcoreError(f"{path} ({fmt}) has damaged progress metadata: {key} is {value!r} "
                               f"({type(value).__name__}), not {wanted}.")


def _corpus(path: Path, fmt: str, progress: Mapping[str, Any]) -> CorpusSpec:
    missing = [key for key in LM_FIELDS if key not in progress]
    if missing:
        raise SeqcoreError(f"{path} ({fmt}) has incomplete progress metadata: {', '.join(missing)} "
                           f"{'is' if len(missing) == 1 else 'are'} missing, so the validation text "
                           f"cannot be rebuilt.")
    _checked(path, fmt, progress, (
        ("corpus", lambda v: isinstance(v, str) and v != "", "a file path, a URL or 'timemachine'"),
        ("corpus_hash", lambda v: v is None or isinstance(v, str), "a checksum string or null"),
        ("token", lambda v: v in ("char", "word"), "'char' or 'word'"),
        ("max_tokens", lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0),
         "a positive whole number or null"),
        ("val_fraction", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ))
    # Formats 1 and 2 broke frequency ties alphabetically (seqcore.data.vocab.Order).
    return CorpusSpec(source=progress["corpus"], source_hash=progress.get("corpus_hash"), token=progress["token"],
                      max_tokens=progress["max_tokens"], val_fraction=progress["val_fraction"],
                      vocab_order=Order.FREQUENCY_ALPHABETICAL.value)


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _mnist(path: Path, fmt: str, progress: Mapping[str, Any]) -> MnistSpec:
    _checked(path, fmt, progress, (
        ("dataset", lambda v: isinstance(v, str), "a data set name"),
        ("data_dir", lambda v: v is None or isinstance(v, str), "a folder"),
        ("num_train", _count, "a positive whole number"), ("num_test", _count, "a positive whole number")))
    return MnistSpec(dataset=progress["dataset"], folder=progress.get("data_dir"),
                     limit_train=progress["num_train"], limit_test=progress["num_test"])


def _sine(path: Path, fmt: str, progress: Mapping[str, Any], train: Optional[TrainSpec]) -> SineSpec:
    _checked(path, fmt, progress, (("iterations", _count, "a positive whole number"),))
    if train is None:
        raise SeqcoreError(f"{path} ({fmt}) holds a sine run without its training spec; it is damaged.")
    return SineSpec(mode=progress["mode"], phase=progress.get("phase", "fixed"), iterations=progress["iterations"],
                    num_steps=train.num_steps, batch_size=train.batch_size)


def derive_data_spec(path: Path, fmt: str, progress: Mapping[str, Any],
                     train: Optional[TrainSpec]) -> Optional[DataSpec]:
    """The data spec behind a format 1 or 2 checkpoint's progress fields, None when it records none."""
    try:
        if any(key in progress for key in LM_FIELDS):
            return _corpus(path, fmt, progress)
        if "dataset" in progress:
            return _mnist(path, fmt, progress)
        if "mode" in progress:
            return _sine(path, fmt, progress, train)
        if "source" in progress and "target" in progress:
            return HelloSpec(source=progress["source"], target=progress["target"])
    except SeqcoreError as error:
        if str(error).startswith(str(path)):
            raise
        raise SeqcoreError(f"{path} ({fmt}) has damaged progress metadata: {str(error).rstrip('.')}.") from None
    return None
