"""Downloads against a local HTTP server on 127.0.0.1: no network needed."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Iterator

import pytest

from seqcore.data import download
from seqcore.errors import SeqcoreError
from tests.http_server import Server

PAYLOAD = b"the time traveller for so it will be convenient to speak of him\n" * 50
SHA1 = hashlib.sha1(PAYLOAD).hexdigest()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy from the environment must not intercept
    root = tmp_path / "served"
    root.mkdir()
    (root / "book.txt").write_bytes(PAYLOAD)
    running = Server(root)
    yield running
    running.close()


def test_download_checks_hash_then_uses_cache(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = download.fetch(f"{server.url}/book.txt", f"sha1:{SHA1}", cache_dir=cache, progress=False)
    assert path == cache / "book.txt"
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/book.txt"]
    # Second call: the cached copy's hash matches, so the server is not asked again.
    md5 = hashlib.md5(PAYLOAD).hexdigest().upper()
    again = download.fetch(f"{server.url}/book.txt", f"md5:{md5}", cache_dir=cache, progress=False)
    assert again == path and server.requests == ["/book.txt"]
    assert sorted(p.name for p in cache.iterdir()) == ["book.txt"]


def test_cache_dir_from_environment(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(download.CACHE_ENV, str(tmp_path / "env-cache"))
    sha256 = hashlib.sha256(PAYLOAD).hexdigest()
    path = download.fetch(f"{server.url}/book.txt", f"sha256:{sha256}", progress=False)
    assert path == tmp_path / "env-cache" / "book.txt"
    assert download.resolve_cache_dir(tmp_path / "x") == tmp_path / "x"


def test_file_placed_by_hand_is_used_offline(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "book.txt").write_bytes(PAYLOAD)
    # Port 9 on 127.0.0.1 has no server: any request would fail.
    path = download.fetch("http://127.0.0.1:9/book.txt", f"sha1:{SHA1}", cache_dir=cache)
    assert path.read_bytes() == PAYLOAD


def test_checksum_mismatch_keeps_no_file(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    wrong = "0" * 40
    with pytest.raises(SeqcoreError) as error:
        download.fetch(f"{server.url}/book.txt", f"sha1:{wrong}", cache_dir=cache, progress=False)
    message = str(error.value)
    assert f"{server.url}/book.txt" in message
    assert SHA1 in message and wrong in message and "not kept" in message
    assert server.requests == ["/book.txt"]
    assert list(cache.iterdir()) == []  # neither the final name nor a temporary file


def test_http_404(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    url = f"{server.url}/missing.txt"
    with pytest.raises(SeqcoreError) as error:
        download.fetch(url, f"sha1:{SHA1}", cache_dir=cache, progress=False)
    assert str(error.value) == (
        f"Could not download {url} (HTTP 404 File not found); check the address or your "
        f"network, or put the file at {cache / 'missing.txt'}."
    )
    assert list(cache.iterdir()) == []


def test_unreachable_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    url = "http://127.0.0.1:9/book.txt"  # discard port: connection refused at once
    message = r"Could not download .* \(no connection to the server\)"
    with pytest.raises(SeqcoreError, match=message):
        download.fetch(url, f"sha1:{SHA1}", cache_dir=tmp_path, progress=False)
    assert not (tmp_path / "book.txt").exists()


@pytest.mark.parametrize(
    "url, known_hash, message",
    [
        ("http://x/a.txt", "sha1:abc", "must look like 'ALGORITHM:HEX'"),
        ("http://x/a.txt", SHA1, "must look like 'ALGORITHM:HEX'"),
        ("http://x/a.txt", f"crc32:{SHA1}", "must look like 'ALGORITHM:HEX'"),
        ("ftp://x/a.txt", f"sha1:{SHA1}", "must start with http:// or https://"),
        ("http://x/", f"sha1:{SHA1}", "does not end in a file name"),
    ],
)
def test_bad_arguments(tmp_path: Path, url: str, known_hash: str, message: str) -> None:
    with pytest.raises(SeqcoreError, match=message):
        download.fetch(url, known_hash, cache_dir=tmp_path, progress=False)
