"""Typed data specs: which data a run trains on, one frozen dataclass per kind of data.

A spec checks itself when it is made (one sentence on the first bad field), round-trips through
JSON with its `kind` (`to_dict` / `data_spec_from_dict`), and its `load()` is the only way to
get the data. What `load()` returns carries the spec, the data and its fingerprint: the SHA-256
of every file's bytes ({} for computed data). Data is identified by those hashes, not by where
it lies: `identity()` is the spec without its location (a corpus path or URL, an MNIST folder),
so a moved copy with the same bytes is the same data and a changed file is not.

    spec = CorpusSpec(source="book.txt", token="char", max_tokens=10_000, val_fraction=0.1)
    corpus = spec.load()            # corpus.vocab, corpus.train_ids, corpus.fingerprint
    spec == data_spec_from_dict(spec.to_dict())
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Optional, Union

import numpy as np

from seqcore.checks import positive_int
from seqcore.data import mnist, mnist_sets, waves
from seqcore.checks import parse_enum
from seqcore.data.corpus import (Preprocess, Token, check_windows, is_url, load_corpus, local_path, sha256_of,
                                 split_train_val, split_windows)
from seqcore.data.download import check_hash
from seqcore.data.pairs import Pairs, PairsSpec  # noqa: F401  (the translation kind, registered below)
from seqcore.data.vocab import Order, Vocab
from seqcore.errors import ConfigError, SeqcoreError

TIME_MACHINE = "timemachine"  # the bundled text, the default corpus


class _Spec:
    """What every data spec shares: its JSON form and its identity."""

    kind: ClassVar[str]
    location: ClassVar[tuple[str, ...]] = ()  # fields that say where the data lies, not which it is

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **dataclasses.asdict(self)}

    def identity(self) -> dict[str, Any]:
        """The fields that pick the data, without its location (compared with the fingerprint)."""
        return {k: v for k, v in self.to_dict().items() if k not in self.location}


def _whole(value: Any, field: str, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        wanted = "a positive whole number" if minimum else "a whole number, zero or more"
        raise ConfigError(f"{field} must be {wanted}, got {value!r}.")


def _text(value: Any, field: str) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{field} must be non-empty text, got {value!r}.")


# -- a language model's corpus -----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class CorpusSpec(_Spec):
    """A text corpus, tokenised, with its tail held out for validation (d2l chapter 8)."""

    kind: ClassVar[str] = "corpus"
    location: ClassVar[tuple[str, ...]] = ("source", "source_hash")

    source: str = TIME_MACHINE  # 'timemachine' (bundled), a UTF-8 file (made absolute) or an http(s) URL
    source_hash: Optional[str] = None  # a URL's checksum, 'sha256:HEX' (also sha1, md5, sha512)
    token: str = Token.CHAR.value
    max_tokens: Optional[int] = 10_000  # train on the first N tokens; None: all
    val_fraction: float = 0.1  # the corpus tail held out for validation
    preprocess: str = Preprocess.LINES.value  # per line (d2l 0.17) or the whole text at once (d2l 1.0)
    vocab_order: str = Order.FREQUENCY.value  # seqcore.data.vocab.Order (d2l 1.0: alphabetical)
    windows: Optional[tuple[int, int, int]] = None  # d2l 1.0's split (train, validation windows, steps),
                                                    # in place of max_tokens and val_fraction

    def __post_init__(self) -> None:
        _text(self.source, "The corpus source")
        if self.source_hash is not None and not isinstance(self.source_hash, str):
            raise ConfigError(f"The corpus checksum must be text such as 'sha256:HEX', got {self.source_hash!r}.")
        if is_url(self.source):
            if not self.source_hash:
                raise ConfigError(f"The corpus {self.source} is a URL: give its checksum too (--corpus-hash "
                                   f"sha256:...), so a changed or corrupt download is caught.")
            check_hash(self.source_hash)
        elif self.source != TIME_MACHINE:
            object.__setattr__(self, "source", str(Path(self.source).expanduser().absolute()))
        if self.token not in [t.value for t in Token]:
            raise ConfigError(f"token must be 'char' or 'word', got {self.token!r}.")
        if self.max_tokens is not None:
            _whole(self.max_tokens, "max tokens", minimum=1)
        if (isinstance(self.val_fraction, bool) or not isinstance(self.val_fraction, (int, float))
                or not 0 <= self.val_fraction < 1):
            raise ConfigError(f"The validation fraction must be a number in [0, 1), got {self.val_fraction!r}.")
        parse_enum(Preprocess, self.preprocess, "preprocessing")
        parse_enum(Order, self.vocab_order, "vocabulary order")
        object.__setattr__(self, "windows", check_windows(self.windows))

    def path(self) -> Optional[Path]:
        """The file the text is read from (a URL is downloaded once, verified); None: the bundled text."""
        found = local_path(None if self.source == TIME_MACHINE else self.source, self.source_hash)
        return None if found is None else Path(found)

    def load(self, progress: bool = True) -> "Corpus":
        path = self.path()
        tokens = load_corpus(path, self.token, preprocessing=self.preprocess)
        vocab = Vocab(tokens, order=self.vocab_order)  # the whole text's (as in d2l): no unknown tokens held out
        train, val = (split_windows(tokens, self.windows[2], *self.windows[:2]) if self.windows
                      else split_train_val(tokens, self.val_fraction, self.max_tokens))
        return Corpus(self, vocab, vocab.encode(train), vocab.encode(val), {"corpus_sha256": sha256_of(path)})


@dataclasses.dataclass(frozen=True)
class Corpus:
    spec: CorpusSpec
    vocab: Vocab
    train_ids: np.ndarray  # (num_train_tokens,) int64
    val_ids: np.ndarray  # (num_val_tokens,) int64, the corpus tail
    fingerprint: dict[str, str]

    @property
    def token(self) -> str:
        return self.spec.token

    def facts(self) -> dict[str, Any]:
        return {"num_train_tokens": int(len(self.train_ids)), "num_val_tokens": int(len(self.val_ids))}


# -- a data set in MNIST's format ----------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MnistSpec(_Spec):
    """Four IDX files (seqcore.data.mnist_sets names them), each image R rows of C pixels."""

    kind: ClassVar[str] = "mnist"
    location: ClassVar[tuple[str, ...]] = ("folder",)

    dataset: str = mnist.MNIST.name  # a seqcore.data.mnist_sets.DATASETS name
    folder: Optional[str] = None  # the folder holding the files (made absolute); None: the download cache
    limit_train: int = 0  # the first N training images only; 0: all
    limit_test: int = 0  # the first N test images only; 0: all

    def __post_init__(self) -> None:
        mnist_sets.get(self.dataset)
        if self.folder is not None:
            _text(self.folder, "The data folder")
            object.__setattr__(self, "folder", str(Path(self.folder).expanduser().absolute()))
        elif self.dataset == mnist_sets.IDX.name:
            raise ConfigError("--dataset idx needs --data-dir, the folder holding the four IDX files.")
        _whole(self.limit_train, "--limit-train")
        _whole(self.limit_test, "--limit-test")

    @property
    def data_set(self) -> mnist.DataSet:
        return mnist_sets.get(self.dataset)

    def load(self, progress: bool = True) -> "Images":
        """Both splits, verified (where the set publishes checksums) or checked, then limited."""
        data_set = self.data_set
        train = mnist.load_split("train", self.folder, dataset=data_set, progress=progress)
        test = mnist.load_split("test", self.folder, dataset=data_set, progress=progress)
        shape = mnist.check_splits(train, test, data_set)  # on the whole files: classes from all labels
        return Images(self, _limited(train, self.limit_train, "--limit-train"),
                      _limited(test, self.limit_test, "--limit-test"), shape,
                      {**train.sha256, **test.sha256})


def _limited(data: mnist.MnistSplit, limit: int, flag: str) -> mnist.MnistSplit:
    if limit > len(data):
        raise SeqcoreError(f"{flag} {limit:,} is more than the {len(data):,} images available.")
    return data.head(limit or None)


@dataclasses.dataclass(frozen=True)
class Images:
    spec: MnistSpec
    train: mnist.MnistSplit
    test: mnist.MnistSplit
    shape: mnist.Shape
    fingerprint: dict[str, str]  # file name -> SHA-256 of its bytes

    @property
    def class_names(self) -> tuple[str, ...]:
        return mnist_sets.class_names(self.spec.data_set, self.shape.num_classes)

    @property
    def figure_names(self) -> tuple[str, ...]:
        return mnist_sets.figure_names(self.spec.data_set, self.class_names)

    def facts(self) -> dict[str, Any]:
        return {"dataset": self.spec.dataset, "data_verified": self.spec.data_set.verified,
                "class_names": list(self.class_names), "num_train": len(self.train), "num_test": len(self.test)}


# -- computed data ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SineSpec(_Spec):
    """Sine waves (seqcore.data.waves): an epoch is `iterations` batches of `batch_size` rows of
    `num_steps` values."""

    kind: ClassVar[str] = "sine"

    mode: str = waves.NEXT  # sin2cos or next
    phase: str = "fixed"  # next mode: fixed or random phases
    iterations: int = 300
    num_steps: int = 100
    batch_size: int = 1

    def __post_init__(self) -> None:
        if self.mode not in waves.MODES:
            raise ConfigError(f"--mode must be one of {', '.join(waves.MODES)}, got {self.mode!r}.")
        if self.phase not in waves.PHASES:
            raise ConfigError(f"--phase must be one of {', '.join(waves.PHASES)}, got {self.phase!r}.")
        for field in ("iterations", "num_steps", "batch_size"):
            positive_int(getattr(self, field), field.replace("_", " "))

    def load(self, progress: bool = True) -> "Waves":
        return Waves(self)


@dataclasses.dataclass(frozen=True)
class Waves:
    spec: SineSpec
    fingerprint: dict[str, str] = dataclasses.field(default_factory=dict)  # no files: computed

    def batches(self, epoch: int, rng: np.random.Generator) -> Iterable[waves.Batch]:
        """sin2cos: the windows after the previous epoch's; next: segments with phases from `rng`."""
        spec = self.spec
        if spec.mode == waves.SIN2COS:
            return waves.sin2cos_batches((epoch - 1) * spec.iterations, spec.iterations, spec.num_steps,
                                         spec.batch_size)
        return waves.next_batches(rng, spec.iterations, spec.num_steps, spec.batch_size, spec.phase)

    def facts(self) -> dict[str, Any]:
        return {}


@dataclasses.dataclass(frozen=True)
class HelloSpec(_Spec):
    """One pair of equal-length strings: each character of `source` maps to `target`'s at its place."""

    kind: ClassVar[str] = "hello"

    source: str = "hello"
    target: str = "ohlol"

    def __post_init__(self) -> None:
        texts = isinstance(self.source, str) and isinstance(self.target, str)
        if not texts or not self.source or len(self.source) != len(self.target):
            lengths = f" ({len(self.source)} vs {len(self.target)})" if texts else ""
            raise ConfigError(f"The source {self.source!r} and target {self.target!r} must be non-empty and of "
                               f"the same length{lengths}: each character maps to one character.")

    def load(self, progress: bool = True) -> "Pair":
        chars = "".join(sorted(set(self.source + self.target)))
        ids = {c: i for i, c in enumerate(chars)}
        return Pair(self, chars, np.array([[ids[c]] for c in self.source], np.int64),
                    np.array([[ids[c]] for c in self.target], np.int64))


@dataclasses.dataclass(frozen=True)
class Pair:
    spec: HelloSpec
    chars: str  # the vocabulary: the sorted set of both strings' characters
    inputs: np.ndarray  # (T, 1) ids
    targets: np.ndarray  # (T, 1) ids
    fingerprint: dict[str, str] = dataclasses.field(default_factory=dict)  # no files

    def facts(self) -> dict[str, Any]:
        return {"chars": self.chars}


# -- every kind (sentence pairs for translation: seqcore.data.pairs) --------------------------------

DataSpec = Union[CorpusSpec, MnistSpec, SineSpec, HelloSpec, PairsSpec]
KINDS: dict[str, type] = {cls.kind: cls for cls in (CorpusSpec, MnistSpec, SineSpec, HelloSpec, PairsSpec)}


def data_spec_from_dict(data: Mapping[str, Any]) -> DataSpec:
    """The spec `to_dict` wrote, or one sentence on why this is not one."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"A data spec must be a JSON object, got {type(data).__name__}.")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"Unknown data kind {kind!r}: choose one of {', '.join(KINDS)}.")
    cls = KINDS[kind]
    fields = {k: v for k, v in data.items() if k != "kind"}
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"Unknown {cls.__name__} field(s): {', '.join(unknown)}.")
    return cls(**fields)

