"""The book's fra-eng.zip through a local HTTP server (no network): the zip checked by its SHA-1, the
extracted fra.txt by its own, the cache reused, a file put there by hand used offline."""
from __future__ import annotations

import hashlib
import io
import shutil
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from seqcore.data import fra_eng
from seqcore.data.download import CACHE_ENV
from seqcore.data.translation import TranslationSpec, load_translation
from seqcore.errors import SeqcoreError
from tests.conftest import ROOT
from tests.http_server import Server

SHARED_FRA = ROOT.parent / "shared" / "data" / "fra-eng" / "fra.txt"
TEXT = fra_eng.head_path().read_bytes()


def zipped(text: bytes, member: str = "fra-eng/fra.txt") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, text)
        archive.writestr("fra-eng/_about.txt", b"CC BY 2.0")
    return buffer.getvalue()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, Path]]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy from the environment must not intercept
    root = tmp_path / "served"
    root.mkdir()
    running = Server(root)
    yield running, root
    running.close()


def test_download_extracts_checks_and_then_uses_the_cache(served, tmp_path: Path) -> None:
    server, root = served
    archive = zipped(TEXT)
    (root / "fra-eng.zip").write_bytes(archive)
    cache = tmp_path / "cache"
    options = dict(url=f"{server.url}/fra-eng.zip", zip_sha1=sha1(archive), text_sha1=sha1(TEXT))
    path = fra_eng.fetch_fra_eng(cache, **options)
    assert path == cache / "fra-eng" / "fra.txt" and path.read_bytes() == TEXT
    assert sorted(p.name for p in (cache / "fra-eng").iterdir()) == ["fra.txt"]  # no temporary left
    assert fra_eng.fetch_fra_eng(cache, **options) == path and server.requests == ["/fra-eng.zip"]
    (cache / "fra-eng.zip").unlink()  # the extracted text alone is enough from now on
    assert fra_eng.fetch_fra_eng(cache, **options) == path and server.requests == ["/fra-eng.zip"]


def test_a_zip_whose_text_is_not_the_books_is_not_kept(served, tmp_path: Path) -> None:
    server, root = served
    other = TEXT.replace(b"Va !", b"Va-t'en !")
    archive = zipped(other)
    (root / "fra-eng.zip").write_bytes(archive)
    cache = tmp_path / "cache"
    with pytest.raises(SeqcoreError) as error:
        fra_eng.fetch_fra_eng(cache, url=f"{server.url}/fra-eng.zip", zip_sha1=sha1(archive), text_sha1=sha1(TEXT))
    assert f"has SHA-1 {sha1(other)}, not the expected {sha1(TEXT)}" in str(error.value)
    assert "not kept" in str(error.value) and not (cache / "fra-eng" / "fra.txt").exists()


def test_a_different_archive_is_refused_by_its_hash(served, tmp_path: Path) -> None:
    server, root = served
    (root / "fra-eng.zip").write_bytes(zipped(TEXT))
    with pytest.raises(SeqcoreError, match="not the expected 94646ad1522d915e7b0f9296181140edcf86a4f5"):
        fra_eng.fetch_fra_eng(tmp_path / "cache", url=f"{server.url}/fra-eng.zip")


@pytest.mark.parametrize("archive, fragment", [
    (b"not a zip at all", "could not be read as a zip file"),
    (zipped(TEXT, member="fra-eng/other.txt"), "holds 0 files named fra.txt"),
])
def test_broken_archives_are_one_sentence(served, tmp_path: Path, archive: bytes, fragment: str) -> None:
    server, root = served
    (root / "fra-eng.zip").write_bytes(archive)
    with pytest.raises(SeqcoreError, match=fragment):
        fra_eng.fetch_fra_eng(tmp_path / "cache", url=f"{server.url}/fra-eng.zip", zip_sha1=sha1(archive),
                              text_sha1=sha1(TEXT))


def test_unreachable_server_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(SeqcoreError, match="Could not download http://127.0.0.1:9/fra-eng.zip"):
        fra_eng.fetch_fra_eng(tmp_path / "cache", url="http://127.0.0.1:9/fra-eng.zip")


def test_the_books_whole_file_by_hand_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real fra.txt put at <cache>/fra-eng/fra.txt passes the book's SHA-1 and serves
    --corpus download offline: the zip is never asked for."""
    if not SHARED_FRA.is_file():
        pytest.skip(f"the book's fra.txt is not at {SHARED_FRA}")
    cache = tmp_path / "cache"
    (cache / "fra-eng").mkdir(parents=True)
    shutil.copyfile(SHARED_FRA, cache / "fra-eng" / "fra.txt")
    monkeypatch.setenv(CACHE_ENV, str(cache))
    data = load_translation(TranslationSpec(corpus="download", num_pairs=20000, num_steps=8, num_held_out=1000))
    assert len(data.train_rows) == 19000 and data.num_truncated == (0, 340)
    assert data.sources([0]) == ["go ."] and data.references([0]) == ["va !"]
    assert fra_eng.FRA_TXT_SHA1 == sha1(SHARED_FRA.read_bytes())
