"""English-French translation data: sentence pairs -> word tokens -> vocabularies -> padded arrays.

The book's pipeline (d2l 1.0 `MTFraEng`, 0.17 `load_data_nmt`), step for step:
- preprocessing: U+202F and U+00A0 become spaces, lower case, a space before each of `,.!?` that
  follows a non-space; tokens are the pieces between spaces (empty pieces skipped, as d2l 1.0);
- vocabularies per side with minimum frequency 2, seqcore's Vocab order ('<unk>' 0, the reserved
  tokens, then by frequency); the source reserves `<pad> <eos>`, the target `<pad> <bos> <eos>`
  (d2l 1.0's sets: 194 and 214 tokens for the first 641 lines; d2l 0.17 also reserved an unused
  `<bos>` in the source, and both books order the tokens differently, so their ids are a
  permutation of ours);
- each sentence + `<eos>` truncated to num_steps (a longer one loses its end, `<eos>` included, as
  in the book: counted) and padded with `<pad>`; valid length = the non-pad positions;
- labels are the target row; decoder inputs are `<bos>` followed by the labels but the last.

Arrays are row-major, (P, T) per pair; `batch` hands out time-major (T, N) ones like every seqcore
batch. The held-out pairs (TranslationSpec.split) are never in a training batch.
"""
from __future__ import annotations

import dataclasses
import hashlib
from enum import Enum
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from seqcore.checks import build, parse_enum, plain, positive_int
from seqcore.data.fra_eng import BUNDLED, corpus_path, read_pairs
from seqcore.data.vocab import UNK, Vocab
from seqcore.errors import SeqcoreError

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"
SOURCE_RESERVED, TARGET_RESERVED = (PAD, EOS), (PAD, BOS, EOS)


class Split(str, Enum):
    SEEDED = "seeded"  # num_held_out pairs drawn by split_seed from all pairs read
    TAIL = "tail"  # the last num_held_out pairs read: d2l 1.0's validation pairs


class Pick(str, Enum):
    FIRST = "first"  # the first num_pairs lines: the book's (fra.txt's shortest sentences come first)
    SPREAD = "spread"  # num_pairs lines evenly spaced over the whole file: every sentence length


class VocabFrom(str, Enum):
    ALL = "all"  # every pair read, held-out ones included: the book's vocabularies
    TRAIN = "train"  # the training pairs only


@dataclasses.dataclass(frozen=True)
class TranslationSpec:
    """Which pairs, how they are cut into arrays, and which are held out; JSON round-trips."""

    corpus: str = BUNDLED  # 'bundled', 'download' or the path of a fra.txt-format file
    num_pairs: int = 641  # pairs (lines) of the corpus, the first ones or spread (pick)
    num_steps: int = 9
    min_freq: int = 2
    num_held_out: int = 129  # 641 - 512: the size of d2l 1.0's validation set
    split: Split = Split.SEEDED
    split_seed: int = 0
    vocab_from: VocabFrom = VocabFrom.ALL
    pick: Pick = Pick.FIRST  # which num_pairs lines of the corpus (a spec without it: the first)

    def __post_init__(self) -> None:
        if not isinstance(self.corpus, str) or not self.corpus:
            raise SeqcoreError(f"corpus must be 'bundled', 'download' or a file path, got {self.corpus!r}.")
        for field in ("num_pairs", "num_steps", "min_freq"):
            positive_int(getattr(self, field), field.replace("_", " "))
        for field in ("num_held_out", "split_seed"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise SeqcoreError(f"{field.replace('_', ' ')} must be a non-negative integer, got {value!r}.")
        if self.num_held_out >= self.num_pairs:
            raise SeqcoreError(f"Holding out {self.num_held_out} of {self.num_pairs} pairs leaves none "
                               f"to train on.")
        object.__setattr__(self, "split", parse_enum(Split, self.split, "split"))
        object.__setattr__(self, "vocab_from", parse_enum(VocabFrom, self.vocab_from, "vocab from"))
        object.__setattr__(self, "pick", parse_enum(Pick, self.pick, "pick"))

    def to_dict(self) -> dict[str, Any]:
        return plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TranslationSpec":
        return build(cls, data)


def preprocess(sentence: str) -> str:
    """The book's `_preprocess` on one side of a pair."""
    text = sentence.replace("\u202f", " ").replace("\xa0", " ").lower()
    return "".join(" " + char if i > 0 and char in ",.!?" and text[i - 1] != " " else char
                   for i, char in enumerate(text))


def tokenize(sentence: str) -> list[str]:
    """Word tokens of a preprocessed sentence: the pieces between spaces, empty ones skipped; a
    reserved token written in the text ('<eos>' ...) is a word no vocabulary knows, '<unk>'."""
    return [UNK if token in TARGET_RESERVED else token for token in sentence.split(" ") if token]


def encode(sentences: Sequence[Sequence[str]], vocab: Vocab, num_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Token lists -> ids (P, T) of tokens + <eos>, truncated to T and padded, and valid lengths (P,)."""
    ids = np.full((len(sentences), num_steps), vocab[PAD], dtype=np.int64)
    valid = np.zeros(len(sentences), dtype=np.int64)
    eos = vocab[EOS]
    for row, tokens in enumerate(sentences):
        line = np.append(vocab.encode(tokens), eos)[:num_steps]
        ids[row, :len(line)] = line
        valid[row] = len(line)
    return ids, valid


@dataclasses.dataclass(frozen=True, eq=False)  # arrays: compare fields, not data sets
class TranslationData:
    """Every pair read, as tokens and as arrays; `train_rows` and `held_out_rows` index them."""

    spec: TranslationSpec
    source_vocab: Vocab
    target_vocab: Vocab
    source_tokens: tuple[tuple[str, ...], ...]  # per pair, preprocessed, before truncation
    target_tokens: tuple[tuple[str, ...], ...]
    source: np.ndarray  # (P, T) int64
    source_valid: np.ndarray  # (P,)
    target: np.ndarray  # (P, T): the labels
    target_valid: np.ndarray  # (P,)
    decoder_input: np.ndarray  # (P, T): <bos>, then the labels but the last (teacher forcing)
    train_rows: np.ndarray  # sorted pair indices
    held_out_rows: np.ndarray
    fingerprint: str  # SHA-256 of the pairs read, tab-joined lines: which data a run saw

    @property
    def num_truncated(self) -> tuple[int, int]:
        """(source, target) sentences that did not fit num_steps with their <eos> and were cut."""
        limit = self.spec.num_steps
        return (sum(len(s) + 1 > limit for s in self.source_tokens),
                sum(len(t) + 1 > limit for t in self.target_tokens))

    def batch(self, rows: Sequence[int] | np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        """(inputs, targets) for the pairs `rows`, time-major:
        inputs = (source ids (T, N), source valid lengths (N,), decoder inputs (T, N)),
        targets = (target ids (T, N), target valid lengths (N,))."""
        rows = np.asarray(rows, dtype=np.int64)
        inputs = (self.source[rows].T.copy(), self.source_valid[rows], self.decoder_input[rows].T.copy())
        return inputs, (self.target[rows].T.copy(), self.target_valid[rows])

    def epoch_batches(self, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
        """The training rows shuffled by `rng` in batches of `batch_size` (the last may be
        shorter, as d2l's DataLoader gives it)."""
        positive_int(batch_size, "batch size")
        order = self.train_rows[rng.permutation(len(self.train_rows))]
        return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]

    def references(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        """The target sentences of `rows`, preprocessed and untruncated: what BLEU compares with."""
        return [" ".join(self.target_tokens[row]) for row in np.asarray(rows, dtype=np.int64)]

    def sources(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        return [" ".join(self.source_tokens[row]) for row in np.asarray(rows, dtype=np.int64)]


def load_translation(spec: TranslationSpec, cache_dir: str | Path | None = None) -> TranslationData:
    """Read, tokenize, split and encode the pairs `spec` names."""
    pairs = read_pairs(corpus_path(spec.corpus, cache_dir), spec.num_pairs, spread=spec.pick is Pick.SPREAD)
    source = tuple(tuple(tokenize(preprocess(english))) for english, _ in pairs)
    target = tuple(tuple(tokenize(preprocess(french))) for _, french in pairs)
    train, held_out = split_rows(spec)
    counted = train if spec.vocab_from is VocabFrom.TRAIN else np.arange(len(pairs))
    steps = spec.num_steps  # the book counts the tokens that survive truncation
    source_vocab = Vocab([source[i][:steps] for i in counted], spec.min_freq, SOURCE_RESERVED)
    target_vocab = Vocab([target[i][:steps] for i in counted], spec.min_freq, TARGET_RESERVED)
    source_ids, source_valid = encode(source, source_vocab, steps)
    target_ids, target_valid = encode(target, target_vocab, steps)
    bos = np.full((len(pairs), 1), target_vocab[BOS], dtype=np.int64)
    decoder_input = np.concatenate([bos, target_ids[:, :-1]], axis=1)
    lines = "\n".join(f"{english}\t{french}" for english, french in pairs)
    return TranslationData(spec, source_vocab, target_vocab, source, target, source_ids, source_valid,
                           target_ids, target_valid, decoder_input, train, held_out,
                           hashlib.sha256(lines.encode("utf-8")).hexdigest())


def split_rows(spec: TranslationSpec) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows), each sorted, disjoint, together every pair read."""
    rows = np.arange(spec.num_pairs)
    if spec.split is Split.TAIL:
        cut = spec.num_pairs - spec.num_held_out
        return rows[:cut], rows[cut:]
    held = np.zeros(spec.num_pairs, dtype=bool)
    held[np.random.default_rng(spec.split_seed).permutation(spec.num_pairs)[:spec.num_held_out]] = True
    return rows[~held], rows[held]


def encode_sentences(sentences: Sequence[str], vocab: Vocab, num_steps: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Sentences to translate -> (ids (T, N), valid lengths (N,), number of unknown words (each
    read as <unk>), number of sentences truncated to num_steps). An empty one is refused."""
    token_lists = []
    for index, sentence in enumerate(sentences):
        tokens = tokenize(preprocess(sentence))
        if not tokens:
            raise SeqcoreError(f"Sentence {index + 1} to translate is empty: there is nothing to translate.")
        token_lists.append(tokens)
    if not token_lists:
        raise SeqcoreError("No sentence to translate was given.")
    unknown = sum(token not in vocab or token == UNK for tokens in token_lists for token in tokens)
    ids, valid = encode(token_lists, vocab, num_steps)
    truncated = sum(len(tokens) + 1 > num_steps for tokens in token_lists)
    return ids.T.copy(), valid, unknown, truncated


def to_text(ids: Sequence[int] | np.ndarray, vocab: Vocab) -> str:
    """Target ids -> the sentence they spell, up to (without) the first <eos>, tokens joined by spaces."""
    tokens = []
    for token in vocab.to_tokens([int(i) for i in ids]):
        if token == EOS:
            break
        tokens.append(token)
    return " ".join(tokens)
