"""`mnist_rows --dataset idx` on IDX files it has never seen, of another image size (12 x 10, 3
classes), on each backend; the run records the data as unverified; and the backend model as a user
imports it: `SequenceModel.from_checkpoint` of that run's checkpoint gives the NumPy reference's
logits and the run's own test accuracy, called without a state, and names a missing file in one
sentence."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seqcore.data import mnist, mnist_sets
from seqcore.errors import SeqcoreError
from seqcore.model import reference
from seqcore.run.checkpoint import load_checkpoint
from seqcore.run.log import read_metrics
from tests.conftest import python
from tests.idx_files import banded, write_set

ROWS, COLUMNS, CLASSES = 12, 10, 3
NUM_TRAIN, NUM_TEST = 600, 150
# Against float64 NumPy on the same float32 weights: 12 steps of a 16-unit LSTM agree to ~1e-6.
LOGITS_ATOL = 2e-5

# The user's view of each backend: load, call without a state, logits as NumPy.
FORWARD = {
    "torch": """
import torch
from backends.torch import SequenceModel
model = SequenceModel.from_checkpoint(CHECKPOINT)
with torch.no_grad():
    logits, state = model(torch.from_numpy(inputs))
    again, _ = model(torch.from_numpy(inputs), model.begin_state(inputs.shape[1]))
logits, again, state = logits.numpy(), again.numpy(), [part.numpy() for part in state]
""",
    "mxnet": """
import mxnet as mx
from backends.mxnet import SequenceModel
model = SequenceModel.from_checkpoint(CHECKPOINT)
logits, state = model(mx.np.array(inputs))
again, _ = model(mx.np.array(inputs), model.begin_state(inputs.shape[1]))
logits, again, state = logits.asnumpy(), again.asnumpy(), [part.asnumpy() for part in state]
""",
}


@pytest.fixture(scope="module")
def idx_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train files gzip-compressed, test files raw: both kinds are read."""
    return write_set(tmp_path_factory.mktemp("idx") / "data", banded(NUM_TRAIN, ROWS, COLUMNS, CLASSES, seed=0),
                     banded(NUM_TEST, ROWS, COLUMNS, CLASSES, seed=1))


@pytest.fixture(scope="module")
def runs() -> dict[str, Path]:
    return {}  # backend -> run folder, trained on first use (one short run per backend)


def trained(runs: dict[str, Path], backend: str, idx_folder: Path, root: Path) -> Path:
    if backend not in runs:
        out = root / f"run-{backend}"
        python("-m", "tasks.mnist_rows", "--dataset", "idx", "--data-dir", str(idx_folder), "--backend", backend,
               "--preset", "seed000", "--hidden-size", "16", "--batch-size", "32", "--epochs", "2",
               "--device", "cpu", "--no-progress", "--out", str(out), check=True)
        runs[backend] = out
    return runs[backend]


@pytest.mark.slow
def test_idx_trains_on_files_of_another_size(backend_name: str, runs, idx_folder: Path, tmp_path_factory) -> None:
    out = trained(runs, backend_name, idx_folder, tmp_path_factory.getbasetemp())
    records = read_metrics(out / "metrics.jsonl")
    head, summary = records[0], records[-1]
    assert head["kind"] == "run" and summary["kind"] == "summary"
    # rows = time steps, row width = input size, classes from the labels; the preset keeps the rest
    assert head["model"]["input_size"] == COLUMNS and head["model"]["output_size"] == CLASSES
    assert head["model"]["cell"] == "lstm" and head["train"]["num_steps"] == ROWS and head["train"]["lr"] == 0.01
    for record in (head, summary):
        assert record["dataset"] == "idx" and record["data_verified"] is False
        assert record["class_names"] == ["0", "1", "2"]
    assert summary["num_test"] == NUM_TEST and summary["test_accuracy"] > 0.8  # chance: 1/3
    epochs = [r for r in records if r["kind"] == "epoch"]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    checkpoint = load_checkpoint(out / "model.safetensors")
    assert checkpoint.provenance["data_verified"] is False and checkpoint.provenance["dataset"] == "idx"
    assert set(checkpoint.fingerprint) == {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
    for name in ("confusion.png", "digits.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_from_checkpoint_without_state_gives_the_reference_logits(backend_name: str, runs, idx_folder: Path,
                                                                   tmp_path_factory, tmp_path: Path) -> None:
    out = trained(runs, backend_name, idx_folder, tmp_path_factory.getbasetemp())
    test = mnist.load_split("test", idx_folder, dataset=mnist_sets.IDX)
    inputs, labels = next(mnist.row_batches(test, NUM_TEST))  # (12, 150, 10), the task's own scaling
    np.save(tmp_path / "inputs.npy", inputs)
    code = (f"import numpy as np\nCHECKPOINT = {str(out / 'model.safetensors')!r}\n"
            f"inputs = np.load({str(tmp_path / 'inputs.npy')!r})\n{FORWARD[backend_name]}\n"
            f"np.savez({str(tmp_path / 'out.npz')!r}, logits=logits, again=again, *state)\n"
            f"from seqcore.errors import SeqcoreError\n"
            f"try:\n    SequenceModel.from_checkpoint({str(tmp_path / 'none.safetensors')!r})\n"
            f"except SeqcoreError as error:\n    print(error)\n")
    printed = python("-c", code, check=True).stdout.strip()
    assert printed == f"No checkpoint file at {tmp_path / 'none.safetensors'}."  # one sentence, no traceback
    found = np.load(tmp_path / "out.npz")
    checkpoint = load_checkpoint(out / "model.safetensors")
    params64 = {name: value.astype(np.float64) for name, value in checkpoint.params.items()}
    expected, state = reference.forward(checkpoint.model_spec, params64, inputs.astype(np.float64))
    assert found["logits"].shape == (NUM_TEST, CLASSES)
    np.testing.assert_allclose(found["logits"], expected, atol=LOGITS_ATOL)
    np.testing.assert_array_equal(found["logits"], found["again"])  # None = zeros of the batch's size
    assert found["arr_0"].shape == (1, NUM_TEST, 16)  # (L*D, N, H)
    np.testing.assert_allclose(found["arr_0"], state[0], atol=LOGITS_ATOL)
    summary = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.mean(found["logits"].argmax(axis=1) == labels) == pytest.approx(summary["test_accuracy"])


# -- the checks that replace a checksum (no framework) ---------------------------------------------

def load_both(folder: Path) -> mnist.Shape:
    train = mnist.load_split("train", folder, dataset=mnist_sets.IDX)
    test = mnist.load_split("test", folder, dataset=mnist_sets.IDX)
    return mnist.check_splits(train, test, mnist_sets.IDX)


def test_any_size_and_number_of_classes(tmp_path: Path) -> None:
    write_set(tmp_path, banded(40, 7, 5, 4), banded(12, 7, 5, 4, seed=1), gz_train=False, gz_test=True)
    assert load_both(tmp_path) == mnist.Shape(rows=7, columns=5, num_classes=4)
    assert not mnist_sets.IDX.verified and mnist_sets.FASHION_MNIST.verified and mnist.MNIST.verified


@pytest.mark.parametrize("train, test, message", [
    (banded(20, 12, 10), banded(5, 10, 12, seed=1),
     "The IDX training images are 12 x 10 pixels but the test images 10 x 12"),
    ((banded(20)[0], np.zeros(20, np.uint8)), banded(5, seed=1), "The IDX training labels hold a single class (0)"),
    (banded(20, num_classes=2), banded(30, num_classes=3, seed=1),
     "The IDX test labels include 2, but the training labels go up to 1 only"),
])
def test_inconsistent_splits(tmp_path: Path, train, test, message: str) -> None:
    write_set(tmp_path, train, test)
    with pytest.raises(SeqcoreError) as error:
        load_both(tmp_path)
    assert str(error.value).startswith(message)


def test_idx_needs_its_folder(tmp_path: Path) -> None:
    with pytest.raises(SeqcoreError, match="The IDX data set has no download; give --data-dir"):
        mnist.load_split("train", None, dataset=mnist_sets.IDX)
    with pytest.raises(SeqcoreError, match=r"The IDX file train-images-idx3-ubyte \(or train-images-idx3-"
                                                 r"ubyte.gz\) is not in .*; put train-images-idx3-ubyte.gz"):
        mnist.load_split("train", tmp_path, dataset=mnist_sets.IDX)
