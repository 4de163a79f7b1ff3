"""The MNIST loader on small IDX files written here (each corruption the loader must name), on the
real files in ../shared/data/mnist, and downloading from a local HTTP server (no network); the
other named data sets' checksums and mirrors, and a real Fashion-MNIST copy where there is one
($SEQCORE_FASHION_MNIST_DIR, else ~/.cache/seqcore/fashion-mnist)."""
from __future__ import annotations

import gzip
import hashlib
import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from seqcore.data import mnist, mnist_sets
from seqcore.errors import SeqcoreError
from tests.conftest import ROOT
from tests.http_server import Server

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # ../shared/data/README.md
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """The IDX encoding of a uint8 array: magic, one big-endian uint32 per dimension, the bytes."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def small_split(count: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 28, 28), np.uint8), rng.integers(0, 10, count, np.uint8)


def write_split(folder: Path, images: bytes, labels: bytes, *, gz: bool = True) -> dict:
    """Writes the test split's two files under their MNIST names; returns a FILES table for them."""
    folder.mkdir(parents=True, exist_ok=True)
    table = {}
    specs = []
    for name, magic, raw in (("t10k-images-idx3-ubyte", mnist.IMAGES_MAGIC, images),
                             ("t10k-labels-idx1-ubyte", mnist.LABELS_MAGIC, labels)):
        packed = gzip.compress(raw, mtime=0)
        (folder / (f"{name}.gz" if gz else name)).write_bytes(packed if gz else raw)
        specs.append(mnist.IdxFile(name, magic, hashlib.md5(raw).hexdigest(), hashlib.md5(packed).hexdigest()))
    table["test"] = tuple(specs)
    return table


def load(folder: Path, table: dict, **kwargs) -> mnist.MnistSplit:
    return mnist.load_split("test", folder, files=table, mirrors=(), progress=False, **kwargs)


@pytest.mark.parametrize("gz", [True, False])
def test_round_trip_gzip_and_raw(tmp_path: Path, gz: bool) -> None:
    images, labels = small_split()
    table = write_split(tmp_path, idx_bytes(images, 2051), idx_bytes(labels, 2049), gz=gz)
    data = load(tmp_path, table)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.labels, labels)
    assert len(data.head(4)) == 4 and len(data.head(None)) == 6


def test_either_checksum_is_accepted(tmp_path: Path) -> None:
    images, labels = small_split()
    table = write_split(tmp_path, idx_bytes(images, 2051), idx_bytes(labels, 2049))
    only_gz = {"test": tuple(spec.__class__(spec.name, spec.magic, "0" * 32, spec.gz_md5) for spec in table["test"])}
    only_raw = {"test": tuple(spec.__class__(spec.name, spec.magic, spec.md5, "0" * 32) for spec in table["test"])}
    assert len(load(tmp_path, only_gz)) == len(load(tmp_path, only_raw)) == 6


def test_checksum_mismatch(tmp_path: Path) -> None:
    images, labels = small_split()
    table = write_split(tmp_path, idx_bytes(images, 2051), idx_bytes(labels, 2049))
    images[0, 0, 0] ^= 1  # one pixel: the structure is fine, only the checksum can tell
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images, 2051)))
    with pytest.raises(SeqcoreError, match=r"t10k-images-idx3-ubyte.gz has MD5 [0-9a-f]{32} once uncompressed, "
                                           r"not the [0-9a-f]{32} of MNIST's t10k-images-idx3-ubyte"):
        load(tmp_path, table)


def test_wrong_magic_number(tmp_path: Path) -> None:
    images, labels = small_split()
    # The labels' magic (2049) on the images file: the two files swapped, say.
    table = write_split(tmp_path, idx_bytes(images, 2049), idx_bytes(labels, 2049))
    with pytest.raises(SeqcoreError, match="starts with the magic number 2049, not 2051 \\(IDX images of unsigned bytes\\)"):
        load(tmp_path, table)


def test_truncated_gzip(tmp_path: Path) -> None:
    images, labels = small_split()
    table = write_split(tmp_path, idx_bytes(images, 2051), idx_bytes(labels, 2049))
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-10])  # an interrupted download
    with pytest.raises(SeqcoreError, match="t10k-labels-idx1-ubyte.gz is not a complete gzip file"):
        load(tmp_path, table)


def test_truncated_data_after_a_good_header(tmp_path: Path) -> None:
    images, labels = small_split()
    table = write_split(tmp_path, idx_bytes(images, 2051)[:-100], idx_bytes(labels, 2049))
    with pytest.raises(SeqcoreError, match=r"declares shape \(6, 28, 28\), which needs 4,704 bytes of data, "
                                           r"but holds 4,604; it is truncated"):
        load(tmp_path, table)


def test_image_and_label_counts_differ(tmp_path: Path) -> None:
    images, labels = small_split()
    table = write_split(tmp_path, idx_bytes(images, 2051), idx_bytes(labels[:5], 2049))
    with pytest.raises(SeqcoreError, match="hold 6 images but 5 labels; they do not belong together"):
        load(tmp_path, table)


@pytest.mark.parametrize("images, labels, message", [
    (np.zeros((3, 27, 28), np.uint8), np.zeros(3, np.uint8), r"images are \(27, 28\) pixels, not 28 x 28"),
    (np.zeros((3, 28, 28), np.uint8), np.array([0, 10, 1], np.uint8), "labels include 10"),
    (np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8), "hold no images"),
])
def test_implausible_contents(tmp_path: Path, images, labels, message: str) -> None:
    table = write_split(tmp_path, idx_bytes(images, 2051), idx_bytes(labels, 2049))
    with pytest.raises(SeqcoreError, match=message):
        load(tmp_path, table)


def test_header_shorter_than_declared(tmp_path: Path) -> None:
    with pytest.raises(SeqcoreError, match="ends inside its IDX header"):
        mnist.parse_idx((2051).to_bytes(4, "big") + b"\x00\x00", 2051, "x")
    with pytest.raises(SeqcoreError, match="too short to be an IDX file"):
        mnist.parse_idx(b"\x00\x00", 2049, "x")


def test_missing_folder_and_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(SeqcoreError, match=f"The MNIST data directory {tmp_path / 'nope'} does not exist"):
        mnist.load_split("test", tmp_path / "nope")
    with pytest.raises(SeqcoreError, match="Unknown MNIST split 'valid'"):
        mnist.load_split("valid", tmp_path)


def test_offline_without_files_says_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv(mnist.MIRRORS_ENV, "http://127.0.0.1:9/mnist/")  # discard port: refused at once
    monkeypatch.setenv("SEQCORE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SeqcoreError) as error:
        mnist.load_split("train", progress=False)
    message = str(error.value)
    folder = tmp_path / "cache" / "mnist"
    assert message.startswith(f"The MNIST file train-images-idx3-ubyte.gz is not in {folder} and could not "
                              f"be downloaded (Could not download http://127.0.0.1:9/mnist/train-images")
    assert "no connection to the server" in message
    assert "t10k-labels-idx1-ubyte.gz" in message and "--data-dir" in message


def test_rows_as_time_major_batches() -> None:
    images, labels = small_split(count=10)
    data = mnist.MnistSplit(images, labels)
    inputs, targets = next(mnist.row_batches(data, 4))
    assert inputs.shape == (28, 4, 28) and inputs.dtype == np.float32 and targets.dtype == np.int64
    np.testing.assert_allclose(inputs[:, 1, :], images[1] / 255.0, rtol=1e-6)  # time step t = row t
    assert 0.0 <= inputs.min() and inputs.max() <= 1.0
    assert [len(t) for _, t in mnist.row_batches(data, 4)] == [4, 4, 2] and mnist.num_batches(10, 4) == 3
    first = np.concatenate([t for _, t in mnist.row_batches(data, 3, np.random.default_rng(5))])
    again = np.concatenate([t for _, t in mnist.row_batches(data, 3, np.random.default_rng(5))])
    np.testing.assert_array_equal(first, again)
    assert sorted(first) == sorted(labels) and not np.array_equal(first, labels)


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"no MNIST files at {SHARED_MNIST}")
def test_the_real_files() -> None:
    for split, counts in (("train", TRAIN_COUNTS), ("test", TEST_COUNTS)):
        data = mnist.load_split(split, SHARED_MNIST)  # verified against the uncompressed MD5s
        assert data.images.shape == (sum(counts), 28, 28)
        assert np.bincount(data.labels).tolist() == counts


# --- downloads, from a server on 127.0.0.1 ---------------------------------------------------------

@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, dict]]:
    """A mirror under /good/ holding the test split as .gz files, and an empty /empty/."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    images, labels = small_split()
    table = write_split(tmp_path / "served" / "good", idx_bytes(images, 2051), idx_bytes(labels, 2049))
    (tmp_path / "served" / "empty").mkdir()
    server = Server(tmp_path / "served")
    yield server, table
    server.close()


def test_download_tries_the_mirrors_in_order_then_uses_the_cache(tmp_path: Path, served) -> None:
    server, table = served
    mirrors = (f"{server.url}/empty/", f"{server.url}/good")
    kwargs = dict(files=table, mirrors=mirrors, cache_dir=tmp_path / "cache", progress=False)
    data = mnist.load_split("test", **kwargs)
    assert len(data) == 6
    assert server.requests == ["/empty/t10k-images-idx3-ubyte.gz", "/good/t10k-images-idx3-ubyte.gz",
                               "/empty/t10k-labels-idx1-ubyte.gz", "/good/t10k-labels-idx1-ubyte.gz"]
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    mnist.load_split("test", **kwargs)
    assert len(server.requests) == 4  # the second load reads the cache only


def test_download_with_the_wrong_checksum_keeps_nothing(tmp_path: Path, served) -> None:
    server, table = served
    wrong = {"test": tuple(spec.__class__(spec.name, spec.magic, spec.md5, "0" * 32) for spec in table["test"])}
    folder = tmp_path / "data"
    folder.mkdir()
    with pytest.raises(SeqcoreError, match=r"could not be downloaded \(The file downloaded from .* has md5 "
                                           r"[0-9a-f]{32}, not the expected 0{32}, so it was not kept\)"):
        mnist.load_split("test", folder, files=wrong, mirrors=(f"{server.url}/good/",), progress=False)
    assert list(folder.iterdir()) == []


# --- the other data sets in MNIST's format (seqcore.data.mnist_sets) ------------------------------------

FASHION_DIR = Path(os.environ.get("SEQCORE_FASHION_MNIST_DIR", Path.home() / ".cache" / "seqcore" / "fashion-mnist"))


def test_named_sets_carry_published_checksums_and_mirrors() -> None:
    hex32 = re.compile(r"[0-9a-f]{32}")
    for dataset in (mnist.MNIST, mnist_sets.FASHION_MNIST, mnist_sets.KMNIST):
        specs = [spec for pair in dataset.files.values() for spec in pair]
        assert [spec.name for spec in specs] == list(mnist_sets.NAMES)
        assert all(hex32.fullmatch(spec.gz_md5) for spec in specs) and dataset.mirrors and dataset.verified
        assert len(dataset.class_names) == 10 and dataset.image_shape == (28, 28)
    assert all(hex32.fullmatch(spec.md5) for pair in mnist_sets.FASHION_MNIST.files.values() for spec in pair)
    assert mnist_sets.FASHION_MNIST.class_names[9] == "Ankle boot"
    assert mnist_sets.KMNIST.class_names[0] == "お" and mnist_sets.KMNIST.figure_names[0] == "o"
    with pytest.raises(SeqcoreError, match="--dataset must be one of mnist, fashion-mnist, kmnist, idx, got 'emnist'"):
        mnist_sets.get("emnist")


def test_kmnist_takes_only_its_gz_files(tmp_path: Path) -> None:
    """No MD5 of KMNIST's uncompressed files is published: a raw copy cannot be verified."""
    images, labels = small_split()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(images, 2051))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels, 2049))
    with pytest.raises(SeqcoreError, match="is uncompressed, and KMNIST publishes only the MD5 of its .gz files"):
        mnist.load_split("test", tmp_path, dataset=mnist_sets.KMNIST, mirrors=())
    write_split(tmp_path / "gz", idx_bytes(images, 2051), idx_bytes(labels, 2049))
    with pytest.raises(SeqcoreError, match=r"and its .gz has MD5 [0-9a-f]{32}, not the 5c965bf0a639b31b8f53240b1b52f4d7 "
                                           r"of KMNIST's t10k-images-idx3-ubyte.gz"):
        mnist.load_split("test", tmp_path / "gz", dataset=mnist_sets.KMNIST, mirrors=())


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason=f"no MNIST files at {SHARED_MNIST}")
def test_mnist_is_not_fashion_mnist() -> None:
    with pytest.raises(SeqcoreError, match="not the 8181f5470baa50b63fa0f6fddb340f0a of Fashion-MNIST's "
                                           "t10k-images-idx3-ubyte"):
        mnist.load_split("test", SHARED_MNIST, dataset=mnist_sets.FASHION_MNIST)


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason=f"no Fashion-MNIST files at {FASHION_DIR}")
def test_a_real_fashion_mnist_copy() -> None:
    """Debian's dataset-fashion-mnist re-compresses the files: accepted by their uncompressed MD5s."""
    for split, count in (("train", 6000), ("test", 1000)):
        data = mnist.load_split(split, FASHION_DIR, dataset=mnist_sets.FASHION_MNIST)
        assert np.bincount(data.labels).tolist() == [count] * 10


def test_download_uses_the_sets_own_mirrors_and_checksums(tmp_path: Path, served, monkeypatch) -> None:
    server, _ = served
    monkeypatch.setenv("SEQCORE_FASHION_MNIST_MIRRORS", f"{server.url}/good/")
    monkeypatch.setenv("SEQCORE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SeqcoreError) as error:
        mnist.load_split("test", dataset=mnist_sets.FASHION_MNIST, progress=False)
    message = str(error.value)
    assert message.startswith(f"The Fashion-MNIST file t10k-images-idx3-ubyte.gz is not in "
                              f"{tmp_path / 'cache' / 'fashion-mnist'} and could not be downloaded")
    assert "not the expected bef4ecab320f06d8554ea6380940ec79" in message  # its published .gz MD5
    assert server.requests == ["/good/t10k-images-idx3-ubyte.gz"]
