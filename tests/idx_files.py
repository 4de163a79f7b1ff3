"""Small IDX data sets written by the tests: a learnable one of another image size than MNIST's,
and the pieces to damage it (wrong magic, truncation, mismatched counts or sizes, one class)."""
from __future__ import annotations

import gzip
from pathlib import Path
from typing import Optional

import numpy as np

IMAGES_MAGIC, LABELS_MAGIC = 2051, 2049
NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """The IDX encoding of a uint8 array: magic, one big-endian uint32 per dimension, the bytes."""
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, np.uint8).tobytes()


def banded(count: int, rows: int = 12, columns: int = 10, num_classes: int = 3,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(count, rows, columns) uint8 images and (count,) labels: class k lights band k of the rows
    (rows split into num_classes bands) over background noise, so reading the rows in order tells
    the class: learnable by a small recurrent model in a few epochs, and not by chance (1/K)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, count).astype(np.uint8)
    images = rng.integers(0, 60, (count, rows, columns))
    edges = np.linspace(0, rows, num_classes + 1).astype(int)
    for index, label in enumerate(labels):
        images[index, edges[label]:edges[label + 1]] += rng.integers(150, 196, (edges[label + 1] - edges[label], columns))
    return images.astype(np.uint8), labels


def write_set(folder: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
              *, gz_train: bool = True, gz_test: bool = False, raw: Optional[dict[str, bytes]] = None) -> Path:
    """The four files under their standard names (train gzip, test raw by default); `raw`
    replaces a file's uncompressed bytes by name (a damaged file)."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, (images, labels), packed in (("train", train, gz_train), ("test", test, gz_test)):
        for name, array, magic in zip(NAMES[split], (images, labels), (IMAGES_MAGIC, LABELS_MAGIC)):
            data = (raw or {}).get(name, idx_bytes(array, magic))
            if packed:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (folder / name).write_bytes(data)
    return folder
