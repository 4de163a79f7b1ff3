"""Data sets in MNIST's IDX format: find the files, verify them, read them, batch them as rows.

A `DataSet` names its four files, their published MD5s and mirrors, and its class names: MNIST
here, Fashion-MNIST, KMNIST and any IDX folder in seqcore.data.mnist_sets. Where the files come from:
`data_dir` when given, else the cache folder (`$SEQCORE_CACHE/<name>`, by default
~/.cache/seqcore/mnist for MNIST). A file missing from that folder is downloaded into it from the
data set's mirrors. Each file may sit there gzip-compressed (`NAME.gz`) or raw (`NAME`); it is
accepted when its MD5 matches either the mirrors' `.gz` or the original uncompressed content
(re-compressed copies, such as ../shared/data/mnist or Debian's dataset-fashion-mnist, differ from
the mirrors in their .gz bytes). A data set without checksums (`idx`) is checked for format and
consistency only: magic numbers, sizes, counts, labels.

IDX: a 4-byte big-endian magic number (0x0000 0x08 = unsigned bytes, then the number of
dimensions), one big-endian uint32 per dimension, then the bytes, row-major.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import math
import os
import zlib
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

import numpy as np

from seqcore.data.download import fetch, resolve_cache_dir
from seqcore.errors import SeqcoreError

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions (count, rows, columns)
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension (count)
_KIND = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}
ROWS = COLUMNS = 28
NUM_CLASSES = 10
SPLITS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class IdxFile:
    name: str  # without .gz, as on the mirrors
    magic: int
    md5: Optional[str]  # of the uncompressed content; None: not published
    gz_md5: Optional[str]  # of the mirrors' .gz (as listed by torchvision); None: not published


# split -> (images, labels); MD5s from ../shared/data/README.md.
FILES: dict[str, tuple[IdxFile, IdxFile]] = {
    "train": (IdxFile("train-images-idx3-ubyte", IMAGES_MAGIC, "6bbc9ace898e44ae57da46a324031adb",
                      "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
              IdxFile("train-labels-idx1-ubyte", LABELS_MAGIC, "a25bea736e30d166cdddb491f175f624",
                      "d53e105ee54ea40749a09fcbcd1e9432")),
    "test": (IdxFile("t10k-images-idx3-ubyte", IMAGES_MAGIC, "2646ac647ad5339dbf082846283269ea",
                     "9fb629c4189551a2d022fa330f9573f3"),
             IdxFile("t10k-labels-idx1-ubyte", LABELS_MAGIC, "27ae3e4e09519cfbb04c329615203637",
                     "ec29112dd5afa0611ce80d1b7f02629c")),
}
# The mirrors torchvision tries, in its order; each serves the four NAME.gz files.
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MIRRORS_ENV = "SEQCORE_MNIST_MIRRORS"  # comma-separated base URLs tried instead (a local mirror, tests)


@dataclasses.dataclass(frozen=True)
class DataSet:
    """Four IDX files (train and test images and labels) and what is known of them beforehand."""

    name: str  # the --dataset value and the cache folder's name
    title: str  # as in sentences and figure titles
    files: Mapping[str, tuple[IdxFile, IdxFile]]  # split -> (images, labels)
    mirrors: tuple[str, ...] = ()  # base URLs serving NAME.gz; () : local files only
    mirrors_env: Optional[str] = None  # an environment variable listing other mirrors
    class_names: Optional[tuple[str, ...]] = None  # by label; None: the label numbers
    figure_names: Optional[tuple[str, ...]] = None  # for figures when class_names need a special font
    image_shape: Optional[tuple[int, int]] = (ROWS, COLUMNS)  # (rows, columns); None: any
    num_classes: Optional[int] = NUM_CLASSES  # None: from the labels

    @property
    def verified(self) -> bool:
        """True when every file is checked against a published checksum."""
        return all(spec.md5 or spec.gz_md5 for pair in self.files.values() for spec in pair)


MNIST = DataSet("mnist", "MNIST", FILES, MIRRORS, MIRRORS_ENV, tuple(str(digit) for digit in range(10)))


@dataclasses.dataclass(frozen=True)
class MnistSplit:
    images: np.ndarray  # (n, rows, columns) uint8, 0 = background (28 x 28 for MNIST)
    labels: np.ndarray  # (n,) uint8 class ids
    sha256: Mapping[str, str] = dataclasses.field(default_factory=dict)  # file name -> SHA-256 of its bytes

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, limit: Optional[int]) -> "MnistSplit":
        """The first `limit` examples (a fixed subset), or all of them for None."""
        if limit is None:
            return self
        return MnistSplit(self.images[:limit], self.labels[:limit], self.sha256)


def parse_idx(data: bytes, magic: int, source: str) -> np.ndarray:
    """The array held by the uncompressed IDX bytes `data`, whose magic number must be `magic`."""
    kind = _KIND.get(magic, "data")
    if len(data) < 4:
        raise SeqcoreError(f"{source} is too short to be an IDX file ({len(data)} bytes).")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise SeqcoreError(f"{source} starts with the magic number {found}, not {magic} (IDX {kind} of "
                           f"unsigned bytes); it is damaged or not an IDX {kind} file.")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise SeqcoreError(f"{source} ends inside its IDX header; it is truncated.")
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(dims)
    if len(data) - header != expected:
        raise SeqcoreError(f"{source} declares shape {dims}, which needs {expected:,} bytes of data, "
                           f"but holds {len(data) - header:,}; it is truncated or damaged.")
    return np.frombuffer(data, np.uint8, offset=header).reshape(dims)


def read_idx(path: str | Path, magic: int, expected: Optional[IdxFile] = None, title: str = "MNIST") -> np.ndarray:
    """Read a raw or gzip-compressed IDX file; with `expected`, also check its MD5 (either kind that
    is published). `title` names the data set in the sentence."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise SeqcoreError(f"Cannot read {path} ({error.strerror}).") from None
    packed_md5 = None
    if data[:2] == b"\x1f\x8b":  # the gzip magic, whatever the file is called
        packed_md5 = hashlib.md5(data).hexdigest()
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as error:  # truncated, bad CRC, not deflate
            raise SeqcoreError(f"{path} is not a complete gzip file ({error}); "
                               f"replace it with a good copy.") from None
    array = parse_idx(data, magic, str(path))
    if expected is not None and (expected.md5 or expected.gz_md5):
        raw_md5 = hashlib.md5(data).hexdigest()
        if expected.md5 is None and packed_md5 is None:
            raise SeqcoreError(
                f"{path} is uncompressed, and {title} publishes only the MD5 of its .gz files; put the "
                f"{expected.name}.gz file as downloaded in that folder.")
        if raw_md5 != expected.md5 and packed_md5 != expected.gz_md5:
            raw = f"not the {expected.md5} of {title}'s {expected.name}" if expected.md5 else \
                f"and its .gz has MD5 {packed_md5}, not the {expected.gz_md5} of {title}'s {expected.name}.gz"
            mirrors = f" (nor is it the mirrors' .gz, {expected.gz_md5})" if expected.md5 and expected.gz_md5 else ""
            raise SeqcoreError(
                f"{path} has MD5 {raw_md5} once uncompressed, {raw}{mirrors}; it is damaged or "
                f"another data set in the same format, so replace it.")
    return array


def check_pair(images: np.ndarray, labels: np.ndarray, source: str, dataset: DataSet = MNIST) -> MnistSplit:
    """An MnistSplit after checking the image size, the counts and the label range (those the
    data set fixes; `idx` fixes none, see check_splits)."""
    shape = dataset.image_shape
    if images.ndim != 3 or (shape is not None and images.shape[1:] != shape):
        wanted = f"{shape[0]} x {shape[1]}" if shape else "rows x columns"
        raise SeqcoreError(f"The {source} images are {images.shape[1:]} pixels, not {wanted}.")
    if labels.ndim != 1 or len(labels) != len(images):
        raise SeqcoreError(f"The {source} files hold {len(images):,} images but {len(labels):,} labels; "
                           f"they do not belong together.")
    if len(labels) == 0 or images.shape[1] == 0 or images.shape[2] == 0:
        raise SeqcoreError(f"The {source} files hold no images.")
    if dataset.num_classes is not None and labels.max() >= dataset.num_classes:
        raise SeqcoreError(f"The {source} labels include {int(labels.max())}; {dataset.title} labels are "
                           f"0 to {dataset.num_classes - 1}.")
    return MnistSplit(images, labels)


@dataclasses.dataclass(frozen=True)
class Shape:
    """What a data set gives the model: time steps, input size and classes."""

    rows: int  # time steps
    columns: int  # input size (one image row)
    num_classes: int


def check_splits(train: MnistSplit, test: MnistSplit, dataset: DataSet = MNIST) -> Shape:
    """The shape both splits share: the same image size, at least two classes in training, and
    test labels among the training classes (a model cannot output a class it never had)."""
    if train.images.shape[1:] != test.images.shape[1:]:
        raise SeqcoreError(f"The {dataset.title} training images are {_pixels(train)} pixels but the test images "
                           f"{_pixels(test)}; the two splits must have one image size.")
    found = np.unique(train.labels)
    if len(found) < 2:
        raise SeqcoreError(f"The {dataset.title} training labels hold a single class ({int(found[0])}); "
                           f"a classifier needs at least 2.")
    num_classes = dataset.num_classes or int(train.labels.max()) + 1
    if int(test.labels.max()) >= num_classes:
        raise SeqcoreError(f"The {dataset.title} test labels include {int(test.labels.max())}, but the training "
                           f"labels go up to {num_classes - 1} only; a model cannot learn a class it never sees.")
    rows, columns = train.images.shape[1:]
    return Shape(int(rows), int(columns), num_classes)


def _pixels(data: MnistSplit) -> str:
    return " x ".join(str(size) for size in data.images.shape[1:])


def data_folder(data_dir: str | Path | None = None, cache_dir: str | Path | None = None,
                dataset: DataSet = MNIST) -> Path:
    """`data_dir` (which must exist), else the data set's folder in the download cache."""
    if data_dir is None:
        if not dataset.mirrors:
            raise SeqcoreError(f"The {dataset.title} data set has no download; give --data-dir, the folder "
                               f"holding its four files.")
        return resolve_cache_dir(cache_dir) / dataset.name
    folder = Path(data_dir).expanduser()
    try:
        found = folder.is_dir()
    except OSError as error:  # a parent folder without permission
        raise SeqcoreError(f"The {dataset.title} data directory {folder} cannot be read ({error.strerror}).") from None
    if not found:
        raise SeqcoreError(f"The {dataset.title} data directory {folder} does not exist.")
    return folder


def locate(spec: IdxFile, folder: Path, mirrors: Sequence[str] = MIRRORS, progress: bool = True,
           all_names: Sequence[str] = (), title: str = "MNIST") -> Path:
    """`folder/NAME.gz` or `folder/NAME`; when neither is there, download NAME.gz into `folder`."""
    for candidate in (folder / f"{spec.name}.gz", folder / spec.name):
        if candidate.is_file():
            return candidate
    names = ", ".join(f"{name}.gz" for name in (all_names or [spec.name]))
    if spec.gz_md5 is None:  # nothing to check a download against (idx): local files only
        raise SeqcoreError(f"The {title} file {spec.name} (or {spec.name}.gz) is not in {folder}; put {names} "
                           f"(gzip or raw IDX) in that folder.")
    reasons = []
    for mirror in mirrors:
        try:
            return fetch(f"{mirror.rstrip('/')}/{spec.name}.gz", f"md5:{spec.gz_md5}",
                         cache_dir=folder, progress=progress)
        except SeqcoreError as error:  # first clause of fetch's sentence: what failed and why
            reasons.append(str(error).split(";")[0].rstrip("."))
    tried = "; ".join(reasons) if reasons else "no mirror was given"
    raise SeqcoreError(
        f"The {title} file {spec.name}.gz is not in {folder} and could not be downloaded ({tried}); "
        f"put {names} (gzip or raw IDX) in that folder, or pass --data-dir with a folder that holds them.")


def mirrors_from_environment(dataset: DataSet = MNIST) -> tuple[str, ...]:
    """The data set's mirrors environment variable split at commas, else its mirrors."""
    listed = [url.strip() for url in os.environ.get(dataset.mirrors_env or "", "").split(",") if url.strip()]
    return tuple(listed) or dataset.mirrors


def load_split(split: str, data_dir: str | Path | None = None, *, dataset: DataSet = MNIST,
               cache_dir: str | Path | None = None, files: Optional[Mapping[str, tuple[IdxFile, IdxFile]]] = None,
               mirrors: Optional[Sequence[str]] = None, progress: bool = True) -> MnistSplit:
    """The 'train' or 'test' split, found (or downloaded), checksum-verified (where the data set
    publishes checksums) and checked.

    files: replaces the data set's table (tests); mirrors: base URLs to download missing files
    from; None: the data set's mirrors environment variable, else its mirrors.
    """
    files = dataset.files if files is None else files
    if split not in files:
        raise SeqcoreError(f"Unknown {dataset.title} split {split!r}: choose one of {', '.join(files)}.")
    folder = data_folder(data_dir, cache_dir, dataset)
    mirrors = mirrors_from_environment(dataset) if mirrors is None else mirrors
    every = [spec.name for pair in files.values() for spec in pair]
    images_spec, labels_spec = files[split]
    images_path = locate(images_spec, folder, mirrors, progress, every, dataset.title)
    labels_path = locate(labels_spec, folder, mirrors, progress, every, dataset.title)
    images = read_idx(images_path, IMAGES_MAGIC, images_spec, dataset.title)
    labels = read_idx(labels_path, LABELS_MAGIC, labels_spec, dataset.title)
    checked = check_pair(images, labels, f"{split} ({images_spec.name}, {labels_spec.name})", dataset)
    hashes = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in (images_path, labels_path)}
    return dataclasses.replace(checked, sha256=hashes)  # what a checkpoint vouches for


def num_batches(num_examples: int, batch_size: int) -> int:
    """Batches per pass: the last one may be smaller (every example is seen once)."""
    return -(-num_examples // batch_size)


def row_batches(data: MnistSplit, batch_size: int,
                rng: Optional[np.random.Generator] = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One pass in time-major batches: inputs (rows, N, columns) float32, targets (N,) int64.

    Image row t is time step t. Pixels are scaled to [0, 1] and not normalised further (the
    tutorials this reproduces do the same). `rng` shuffles the order; None keeps the file order.
    """
    order = rng.permutation(len(data)) if rng is not None else np.arange(len(data))
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        pixels = data.images[index].astype(np.float32) / np.float32(255.0)  # (N, T, I)
        yield np.ascontiguousarray(pixels.transpose(1, 0, 2)), data.labels[index].astype(np.int64)
