"""Where English-French sentence pairs come from: the bundled head, a file, or the book's download.

The pairs are Tatoeba's, as packaged by manythings.org/anki (CC BY 2.0; attribution:
www.manythings.org/anki and tatoeba.org; the terms travel beside the data in
seqcore/data/fra_eng_about.txt). One pair per line, `English<TAB>French`; newer manythings files
add a third, attribution column, which is accepted and ignored.

    bundled    seqcore/data/fra_eng_head.txt: the first 641 lines of the book's fra.txt, byte for
               byte (d2l 1.0 reads 641 lines, d2l 0.17 601), so the default task runs offline
    download   the book's fra-eng.zip (d2l's DATA_HUB['fra-eng']) fetched once into the cache and
               checked by its SHA-1, then fra.txt extracted and checked by its own SHA-1 (re-zipped
               copies of the same text differ as archives); a fra.txt put into the cache by hand,
               at <cache>/fra-eng/fra.txt, is used once its SHA-1 matches
    a path     any file in this format, read as it is
"""
from __future__ import annotations

import hashlib
import importlib.resources
import os
import tempfile
import zipfile
from pathlib import Path

from seqcore.data.download import fetch, resolve_cache_dir
from seqcore.errors import SeqcoreError

BUNDLED, DOWNLOAD = "bundled", "download"
HEAD_SHA1 = "ba3b49ecdd52691941b43637f9b1fa95bf8c709d"  # the first 641 lines of fra.txt
HEAD_PAIRS = 641
FRA_TXT_SHA1 = "c43f99dce27311d3afd4d3e0716848194cfcc103"  # 167,130 pairs, file date 2019-04-07
FRA_ZIP_SHA1 = "94646ad1522d915e7b0f9296181140edcf86a4f5"  # d2l's DATA_HUB['fra-eng']
FRA_ZIP_URL = "http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip"

Pair = tuple[str, str]  # (English, French), as written in the file


def head_path() -> Path:
    """The bundled head of fra.txt on disk."""
    path = _head_location()
    if not path.is_file():
        raise SeqcoreError(f"The bundled English-French pairs are missing at {path}; reinstall seqcore.")
    return path


def _head_location() -> Path:
    return Path(str(importlib.resources.files("seqcore").joinpath("data", "fra_eng_head.txt")))


def corpus_path(corpus: str, cache_dir: str | Path | None = None) -> Path:
    """The file that `corpus` ('bundled', 'download' or a path) names, downloaded if need be."""
    if corpus == BUNDLED:
        return head_path()
    if corpus == DOWNLOAD:
        return fetch_fra_eng(cache_dir)
    return Path(corpus).expanduser()


def read_pairs(path: str | Path, num_pairs: int, spread: bool = False) -> list[Pair]:
    """The first `num_pairs` pairs of the file at `path` (spread: `num_pairs` lines evenly spaced
    over the whole file, in file order: fra.txt runs from the shortest sentences to the longest,
    so these hold every length), each line checked (one sentence on a line without a tab, with
    too many columns, with an empty side, or not in UTF-8)."""
    path = Path(path)
    bundled = path == _head_location()
    data = _read_bytes(path)
    if bundled and hashlib.sha1(data).hexdigest() != HEAD_SHA1:
        raise SeqcoreError(f"The bundled English-French pairs at {path} are damaged (SHA-1 "
                           f"{hashlib.sha1(data).hexdigest()}, not {HEAD_SHA1}); reinstall seqcore.")
    lines = data.split(b"\n")
    if lines[-1] == b"":  # the newline that ends the last line
        lines.pop()
    if spread and len(lines) >= num_pairs:  # line k * len / num_pairs: the first line, then every len/num_pairs-th
        chosen = [(k * len(lines)) // num_pairs for k in range(num_pairs)]
    else:
        chosen = range(min(num_pairs, len(lines)))
    pairs = [_parse(lines[index], index + 1, path) for index in chosen]
    if len(pairs) < num_pairs:
        where = "The bundled head of fra.txt" if bundled else f"The corpus file {path}"
        hint = " (use --corpus download or --corpus PATH for more)" if bundled else ""
        raise SeqcoreError(f"{where} holds {len(pairs)} sentence pairs, fewer than the "
                           f"{num_pairs} asked for{hint}.")
    return pairs


def _parse(line: bytes, number: int, path: Path) -> Pair:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SeqcoreError(f"Line {number} of {path} is not UTF-8 text (bad byte at offset "
                           f"{error.start} of the line).") from None
    if number == 1:
        text = text.removeprefix("\ufeff")  # a byte-order mark is not part of the first word
    columns = text.removesuffix("\r").split("\t")
    if len(columns) == 1:
        raise SeqcoreError(f"Line {number} of {path} has no tab between the English and the French "
                           f"sentence: {text[:60]!r}.")
    if len(columns) > 3:
        raise SeqcoreError(f"Line {number} of {path} has {len(columns)} tab-separated columns; a pair "
                           f"has 2 (English, French) or 3 (with an attribution).")
    english, french = columns[0], columns[1]
    for side, sentence in (("English", english), ("French", french)):
        if not sentence.strip():
            raise SeqcoreError(f"Line {number} of {path} has an empty {side} sentence.")
    return english, french


def _read_bytes(path: Path) -> bytes:
    try:
        if not path.exists():
            raise SeqcoreError(f"The corpus file {path} does not exist.")
        if not path.is_file():  # a directory, or a FIFO that would block
            raise SeqcoreError(f"The corpus path {path} is not a regular file.")
        data = path.read_bytes()
    except OSError as error:
        raise SeqcoreError(f"The corpus file {path} could not be read ({error.strerror}).") from None
    if not data:
        raise SeqcoreError(f"The corpus file {path} is empty.")
    return data


def fetch_fra_eng(cache_dir: str | Path | None = None, url: str = FRA_ZIP_URL,
                  zip_sha1: str = FRA_ZIP_SHA1, text_sha1: str = FRA_TXT_SHA1) -> Path:
    """<cache>/fra-eng/fra.txt, verified by `text_sha1`: kept from an earlier call (or put there
    by hand), else extracted from the zip at `url` (downloaded once, verified by `zip_sha1`).
    Nothing that fails a check is left under the final name."""
    folder = resolve_cache_dir(cache_dir) / "fra-eng"
    target = folder / "fra.txt"
    if target.is_file() and _sha1(target) == text_sha1:
        return target
    archive = fetch(url, f"sha1:{zip_sha1}", cache_dir=cache_dir)
    try:
        with zipfile.ZipFile(archive) as opened:
            names = [name for name in opened.namelist() if name.rsplit("/", 1)[-1] == "fra.txt"]
            if len(names) != 1:
                raise SeqcoreError(f"The archive {archive} holds {len(names)} files named fra.txt, "
                                   f"not one; delete it and download again.")
            data = opened.read(names[0])
    except (zipfile.BadZipFile, OSError) as error:
        raise SeqcoreError(f"The archive {archive} could not be read as a zip file ({error}); "
                           f"delete it and download again.") from None
    actual = hashlib.sha1(data).hexdigest()
    if actual != text_sha1:
        raise SeqcoreError(f"The fra.txt inside {archive} has SHA-1 {actual}, not the expected "
                           f"{text_sha1}, so it was not kept.")
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".fra.txt.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, target)  # atomic: a reader never sees half a file
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()
