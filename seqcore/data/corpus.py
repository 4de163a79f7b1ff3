"""Corpora and tokenisation: text file -> cleaned lines -> flat token list -> train / validation.

The default corpus is H. G. Wells's *The Time Machine*, the file the d2l book uses, shipped inside
the package and checked by SHA-1 so the default task runs offline and on exactly the book's text.
Two preprocessings (`Preprocess`), each the book's to the character. LINES (the default, d2l 0.17's
`read_time_machine`): per line, every run of non-letters becomes one space, the line is stripped and
lower-cased, and character tokens are concatenated across lines with nothing in between (170,580
characters and a 28-token vocabulary for the Time Machine). TEXT (d2l 1.0's `TimeMachine`): the
same substitution over the whole text at once, nothing stripped, so a line break is a space
(173,428 characters).
"""
from __future__ import annotations

import hashlib
import importlib.resources
import re
from enum import Enum
from pathlib import Path
from typing import Optional, Sequence, TypeVar

from seqcore.checks import parse_enum
from seqcore.data.download import fetch
from seqcore.errors import ConfigError, SeqcoreError

TIME_MACHINE_SHA1 = "090b5e7e70c295757f55df93cb0a180b9691891a"
_NON_LETTERS = re.compile("[^A-Za-z]+")

T = TypeVar("T")


class Token(str, Enum):
    CHAR = "char"  # one token per character, spaces included
    WORD = "word"  # whitespace-separated words


class Preprocess(str, Enum):
    LINES = "lines"  # d2l 0.17: per line, non-letter runs -> ' ', strip, lower-case, lines joined
    TEXT = "text"  # d2l 1.0: the whole text at once, non-letter runs -> ' ', lower-case, no strip


def time_machine_path() -> Path:
    """Where the bundled copy of the Time Machine text lies on disk."""
    resource = importlib.resources.files("seqcore").joinpath("data", "timemachine.txt")
    path = Path(str(resource))
    if not path.is_file():
        raise SeqcoreError(
            f"The bundled Time Machine text is missing at {path}; reinstall seqcore."
        )
    return path


def read_time_machine() -> str:
    """The bundled Time Machine text, after checking that its bytes are the d2l book's file."""
    return read_checked(time_machine_path(), TIME_MACHINE_SHA1)


def sha256_of(path: str | Path | None) -> str:
    """SHA-256 of a corpus file's bytes (None: the bundled text): what a checkpoint vouches for."""
    return hashlib.sha256(_read_bytes(time_machine_path() if path is None else Path(path))).hexdigest()


def read_checked(path: str | Path, sha1: str) -> str:
    """The UTF-8 text at `path`, refused unless the file's SHA-1 is `sha1`."""
    path = Path(path)
    data = _read_bytes(path)
    actual = hashlib.sha1(data).hexdigest()
    if actual != sha1.lower():
        raise SeqcoreError(
            f"The text at {path} has SHA-1 {actual}, not {sha1}; the file is damaged or "
            f"different, so reinstall seqcore or restore the original file."
        )
    return _decode(data, path)


def read_text(path: str | Path) -> str:
    """The whole UTF-8 text file at `path`, newlines normalised to '\\n' as text mode does."""
    path = Path(path)
    return _decode(_read_bytes(path), path)


def _read_bytes(path: Path) -> bytes:
    try:  # exists() raises PermissionError inside a folder without permission
        exists = path.exists()
    except OSError as error:
        raise SeqcoreError(f"The corpus file {path} could not be read ({error.strerror}).") from None
    if not exists:
        raise SeqcoreError(f"The corpus file {path} does not exist.")
    if path.is_dir():
        raise SeqcoreError(f"The corpus path {path} is a directory, not a text file.")
    if not path.is_file():  # a FIFO would block and /dev/zero never end
        raise SeqcoreError(f"The corpus path {path} is not a regular file.")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SeqcoreError(
            f"The corpus file {path} could not be read ({error.strerror})."
        ) from None
    if not data:
        raise SeqcoreError(f"The corpus file {path} is empty.")
    return data


def _decode(data: bytes, path: Path) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SeqcoreError(
            f"The corpus file {path} is not UTF-8 text (bad byte at offset {error.start})."
        ) from None
    # Universal newlines, as `open(path).readlines()` in d2l sees them.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def preprocess(text: str, kind: Preprocess | str = Preprocess.LINES) -> list[str]:
    """LINES, d2l 0.x `read_time_machine`: per line, runs of non-letters -> ' ', strip, lower-case.
    TEXT, d2l 1.0 `TimeMachine._preprocess`: the same over the whole text, as one line.

    Lines are split as `readlines()` splits them (on '\\n' only, no empty line after a final
    newline), so the concatenated character count matches the book exactly.
    """
    if parse_enum(Preprocess, kind, "preprocessing") is Preprocess.TEXT:
        return [_NON_LETTERS.sub(" ", text).lower()]
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [_NON_LETTERS.sub(" ", line).strip().lower() for line in lines]


def tokenize(lines: Sequence[str], token: Token | str = Token.CHAR) -> list[str]:
    """Flat token list: characters concatenated across lines, or each line's words in turn."""
    try:
        kind = Token(token)
    except ValueError:
        raise SeqcoreError(f"Unknown token kind {token!r}: choose one of char, word.") from None
    if kind is Token.CHAR:
        return [char for line in lines for char in line]
    return [word for line in lines for word in line.split()]


def is_url(source: str | Path | None) -> bool:
    return isinstance(source, str) and source.startswith(("http://", "https://"))


def load_corpus(path: str | Path | None = None, token: Token | str = Token.CHAR,
                known_hash: str | None = None, preprocessing: Preprocess | str = Preprocess.LINES) -> list[str]:
    """Tokens of the text at `path` (None: the bundled, checksum-verified Time Machine).

    `path` may be an http(s) URL: it is downloaded once into the cache and verified against
    `known_hash` ('sha256:...', 'sha1:...' or 'md5:...'), which a URL must come with.
    """
    path = local_path(path, known_hash)
    text = read_time_machine() if path is None else read_text(path)
    tokens = tokenize(preprocess(text, preprocessing), token)
    if not tokens:
        name = "The Time Machine text" if path is None else f"The corpus file {path}"
        raise SeqcoreError(
            f"{name} contains no letters A-Z, so nothing is left after preprocessing."
        )
    return tokens


def local_path(path: str | Path | None, known_hash: str | None = None) -> str | Path | None:
    """The file a corpus is read from: a URL is downloaded (once, verified) into the cache."""
    if not is_url(path):
        return path
    if not known_hash:
        raise SeqcoreError(f"The corpus {path} is a URL: give its checksum too (--corpus-hash "
                           "sha256:...), so a changed or corrupt download is caught.")
    return fetch(str(path), known_hash)


def split_train_val(
    tokens: Sequence[T], val_fraction: float = 0.1, max_train_tokens: int | None = None
) -> tuple[Sequence[T], Sequence[T]]:
    """(train, val): val is the last `val_fraction` of the corpus, text the model never sees.

    Training is the start of the remaining text, cut to `max_train_tokens` when given (d2l
    trains on the first 10,000 characters). The two parts never overlap.
    """
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, (int, float))
        or not 0 <= val_fraction < 1
    ):
        raise SeqcoreError(f"The validation fraction must be in [0, 1), got {val_fraction!r}.")
    if max_train_tokens is not None and (
        isinstance(max_train_tokens, bool)
        or not isinstance(max_train_tokens, int)
        or max_train_tokens <= 0
    ):
        raise SeqcoreError(
            f"The training-token limit must be a positive integer, got {max_train_tokens!r}."
        )
    total = len(tokens)
    num_val = round(total * val_fraction)  # round, not floor: 0.29 * 100 is 28.999...
    if val_fraction > 0 and num_val == 0:
        raise SeqcoreError(
            f"A corpus of {total} tokens is too short to hold out a validation fraction of "
            f"{val_fraction}; use a longer corpus or a validation fraction of 0."
        )
    num_train = total - num_val
    if num_train == 0:
        raise SeqcoreError(f"A corpus of {total} tokens leaves no training text.")
    if max_train_tokens is not None:
        num_train = min(num_train, max_train_tokens)
    return tokens[:num_train], tokens[total - num_val:]


def split_windows(tokens: Sequence[T], num_steps: int, num_train: int, num_val: int
                  ) -> tuple[Sequence[T], Sequence[T]]:
    """(train, val) as d2l 1.0's TimeMachine cuts them: its training set is the `num_train`
    windows of num_steps + 1 tokens that start at tokens 0 .. num_train - 1, its validation set
    the `num_val` windows that start right after (num_train .. num_train + num_val - 1). Each
    part is returned as the tokens its windows cover, num_train + num_steps and num_val +
    num_steps of them, overlapping by num_steps tokens as the book's windows do."""
    for value, name in ((num_steps, "--num-steps"), (num_train, "--train-windows"), (num_val, "--val-windows")):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SeqcoreError(f"{name} must be a positive integer, got {value!r}.")
    available = len(tokens) - num_steps  # windows of num_steps + 1 tokens
    if num_train + num_val > available:
        raise SeqcoreError(f"A corpus of {len(tokens)} tokens holds {max(available, 0)} windows of {num_steps} + 1 "
                           f"tokens, fewer than the {num_train} + {num_val} that --train-windows and "
                           f"--val-windows ask for.")
    return tokens[:num_train + num_steps], tokens[num_train:num_train + num_val + num_steps]


def check_windows(windows: Optional[Sequence[int]]) -> Optional[tuple[int, int, int]]:
    """A CorpusSpec's d2l 1.0 split as (train windows, validation windows, steps), or None."""
    if windows is None:
        return None
    if isinstance(windows, (str, bytes)) or not isinstance(windows, Sequence) or len(windows) != 3:
        raise ConfigError(f"The window split must be (train windows, validation windows, steps), got {windows!r}.")
    for value, name in zip(windows, ("--train-windows", "--val-windows", "--num-steps")):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{name} must be a positive whole number, got {value!r}.")
    return tuple(windows)
