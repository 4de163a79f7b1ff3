"""The data sets in MNIST's format that `tasks.mnist_rows --dataset` knows by name, and `idx`.

Each named set carries its published MD5s, both of the mirrors' `.gz` files (the values
torchvision lists) and, where published, of the uncompressed content, so that a re-compressed
copy is recognised too. `idx` is any four IDX files in a folder: it has no checksums, so it is
checked for format and consistency only (seqcore.data.mnist.check_pair / check_splits), and a run on
it records that its data was unverified.

Sources of the checksums:
- Fashion-MNIST: the `.gz` MD5s of zalandoresearch/fashion-mnist's README (its S3 mirror); the
  uncompressed MD5s as listed in several public loaders, and recomputed here from Debian's
  `dataset-fashion-mnist` package (0.0~git20200523.55506a9-1), whose re-compressed files
  decompress to exactly these bytes.
- KMNIST: the `.gz` MD5s that torchvision's KMNIST class lists for the rois-codh mirror. No
  MD5 of the uncompressed files is published, so KMNIST is accepted as the `.gz` files only.
"""
from __future__ import annotations

from seqcore.data.mnist import IMAGES_MAGIC, LABELS_MAGIC, MNIST, DataSet, IdxFile
from seqcore.errors import SeqcoreError

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _files(md5s: dict[str, tuple[str | None, str | None]]) -> dict[str, tuple[IdxFile, IdxFile]]:
    """The split table from {name: (uncompressed MD5, .gz MD5)} in NAMES' order."""
    def spec(name: str) -> IdxFile:
        raw, packed = md5s.get(name, (None, None))
        return IdxFile(name, IMAGES_MAGIC if "images" in name else LABELS_MAGIC, raw, packed)
    return {"train": (spec(NAMES[0]), spec(NAMES[1])), "test": (spec(NAMES[2]), spec(NAMES[3]))}


FASHION_MNIST = DataSet(
    "fashion-mnist", "Fashion-MNIST",
    _files({"train-images-idx3-ubyte": ("f4a8712d7a061bf5bd6d2ca38dc4d50a", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            "train-labels-idx1-ubyte": ("9018921c3c673c538a1fc5bad174d6f9", "25c81989df183df01b3e8a0aad5dffbe"),
            "t10k-images-idx3-ubyte": ("8181f5470baa50b63fa0f6fddb340f0a", "bef4ecab320f06d8554ea6380940ec79"),
            "t10k-labels-idx1-ubyte": ("15d484375f8d13e6eb1aabb0c3f46965", "bb300cfdad3c16e7a12a480ee83cd310")}),
    mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    mirrors_env="SEQCORE_FASHION_MNIST_MIRRORS",
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"))

KMNIST = DataSet(
    "kmnist", "KMNIST",
    _files({"train-images-idx3-ubyte": (None, "bdb82020997e1d708af4cf47b453dcf7"),
            "train-labels-idx1-ubyte": (None, "e144d726b3acfaa3e44228e80efcd344"),
            "t10k-images-idx3-ubyte": (None, "5c965bf0a639b31b8f53240b1b52f4d7"),
            "t10k-labels-idx1-ubyte": (None, "7320c461ea6c1c855c0b718fb2a4b134")}),
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    mirrors_env="SEQCORE_KMNIST_MIRRORS",
    # One hiragana from each row of the syllabary; figures use the romanisation (matplotlib's
    # default font, DejaVu Sans, has no hiragana).
    class_names=("お", "き", "す", "つ", "な", "は", "ま", "や", "れ", "を"),
    figure_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"))

# Any image size and any number of classes, read from the files; nothing to download or verify.
IDX = DataSet("idx", "IDX", _files({}), image_shape=None, num_classes=None)

DATASETS: dict[str, DataSet] = {data.name: data for data in (MNIST, FASHION_MNIST, KMNIST, IDX)}


def get(name: str) -> DataSet:
    """The data set called `name` (a --dataset value)."""
    try:
        return DATASETS[name]
    except KeyError:
        raise SeqcoreError(f"--dataset must be one of {', '.join(DATASETS)}, got {name!r}.") from None


def class_names(dataset: DataSet, num_classes: int) -> tuple[str, ...]:
    """The data set's class names, else the label numbers."""
    return dataset.class_names or tuple(str(label) for label in range(num_classes))


def figure_names(dataset: DataSet, names: tuple[str, ...]) -> tuple[str, ...]:
    """The names drawn in figures: the data set's plain ones where it has them (KMNIST's
    romanisation: matplotlib's default font, DejaVu Sans, has no hiragana), else `names`."""
    return dataset.figure_names or names
