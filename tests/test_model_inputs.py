"""Both SequenceModels refuse the same bad inputs with the same sentence (seqcore.model.inputs),
whether the batch comes through the backend as NumPy, is given to the model as NumPy, or as the
framework's own array; and `from_checkpoint` says in one sentence what is wrong. Each backend runs
in its own process and prints what each case gave; the test holds both to one table.

Before these checks MXNet read ids of V or more and negative ids as an all-zero one-hot row (the
logits of no input) and truncated float ids, where PyTorch raised, and 1-D ids gave
`IndexError: tuple index out of range` on both.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqcore.model.params import init_params
from seqcore.model.spec import ModelSpec
from seqcore.run.checkpoint import Checkpoint, save_checkpoint
from tests.conftest import python

TOKENS = ModelSpec(cell="gru", impl="concise", input_size=5, hidden_size=3, output_size=5)
FEATURES = ModelSpec(cell="lstm", impl="scratch", input_size=2, hidden_size=3, output_size=1,
                     input_kind="dense", readout="last")
IDS = "A token model (onehot input) reads time-major ids of shape (T, N), got an array of shape"

# case -> the sentence; each case runs through backend.forward (NumPy) and, where it has a
# framework form, model(framework array)
EXPECTED = {
    "id-equal-to-V": "Token ids must be in [0, 5) for this model's vocabulary of 5, got ids from 0 to 5.",
    "negative-id": "Token ids must be in [0, 5) for this model's vocabulary of 5, got ids from -1 to 0.",
    "huge-id": "Token ids must be in [0, 5) for this model's vocabulary of 5, got ids from 0 to 4294967296.",
    "float-ids": "Token ids must be integers, got float64.",
    "integral-float-ids": "Token ids must be integers, got float32.",
    "bool-ids": "Token ids must be integers, got bool.",
    "text-ids": "Token ids must be integers, got str32.",
    "1-D-ids": f"{IDS} (4,).",
    "3-D-ids": f"{IDS} (2, 1, 5).",
    "empty-sequence": "The inputs are an empty sequence (no time step), shape (0, 2): give at least one step of one "
                      "sequence.",
    "empty-batch": "The inputs are an empty batch (no sequence), shape (3, 0): give at least one step of one sequence.",
    "integer-features": "Features must be floating point, got int64.",
    "2-D-features": "A dense-input model reads time-major features of shape (T, N, I), got an array of shape (2, 2).",
    "feature-width": "This model reads 2 features per step, got 3 (inputs of shape (2, 1, 3), time-major (T, N, I)).",
}
CHECKPOINT_EXPECTED = {
    "missing-file": "No checkpoint file at",
    "unknown-device": "Unknown device 'tpu': choose one of cpu, gpu, auto.",
    "ids-into-a-dense-checkpoint": "A dense-input model reads time-major features of shape (T, N, I), got an array "
                                   "of shape (3, 2).",
}

SCRIPT = r"""
import json, sys
import numpy as np
from seqcore.backend import load_backend
from seqcore.model.params import init_params
from seqcore.model.spec import ModelSpec
from seqcore.errors import SeqcoreError

name, folder = sys.argv[1], sys.argv[2]
specs = json.loads(sys.argv[3])
backend = load_backend(name)
if name == "torch":
    import torch
    from backends.torch import SequenceModel
    native = lambda a: torch.from_numpy(np.ascontiguousarray(a))
else:
    import mxnet as mx
    from backends.mxnet import SequenceModel
    native = lambda a: mx.np.array(a, dtype=a.dtype)

def said(call):
    try:
        call()
    except SeqcoreError as error:
        return str(error)
    except Exception as error:
        return f"RAW {type(error).__name__}: {error}"
    return "accepted"

tokens, features = (ModelSpec.from_dict(s) for s in specs)
models = {id(spec): backend.build_model(spec, init_params(spec), "cpu") for spec in (tokens, features)}
cases = {
    "id-equal-to-V": (tokens, np.array([[5, 0]])), "negative-id": (tokens, np.array([[-1, 0]])),
    "huge-id": (tokens, np.array([[2 ** 32, 0]], dtype=np.int64)), "float-ids": (tokens, np.array([[1.5, 2.0]])),
    "integral-float-ids": (tokens, np.array([[1.0]], dtype=np.float32)), "bool-ids": (tokens, np.array([[True]])),
    "text-ids": (tokens, np.array([["a"]])), "1-D-ids": (tokens, np.array([1, 2, 3, 4])),
    "3-D-ids": (tokens, np.zeros((2, 1, 5), np.int64)), "empty-sequence": (tokens, np.zeros((0, 2), np.int64)),
    "empty-batch": (tokens, np.zeros((3, 0), np.int64)),
    "integer-features": (features, np.zeros((2, 1, 2), np.int64)),
    "2-D-features": (features, np.zeros((2, 2), np.float32)),
    "feature-width": (features, np.zeros((2, 1, 3), np.float32)),
}
result = {"backend": {}, "numpy": {}, "native": {}}
for case, (spec, array) in cases.items():
    model = models[id(spec)]
    result["backend"][case] = said(lambda: backend.forward(model, array, None))
    result["numpy"][case] = said(lambda: model(array))
    if array.dtype.kind in "iufb":  # the frameworks have no text arrays
        result["native"][case] = said(lambda: model(native(array)))

# good inputs: every door gives the backend's logits
model = models[id(tokens)]
ids = np.array([[1, 2], [4, 0], [3, 3]])
reference, _ = backend.forward(model, ids, None)
direct = [model(ids)[0], model(native(ids.astype(np.int32)))[0]]
result["same_logits"] = [float(np.max(np.abs(np.asarray(d.asnumpy() if hasattr(d, "asnumpy") else d.detach().numpy())
                                             - reference))) for d in direct]

saved = folder + "/dense.safetensors"
result["checkpoint"] = {
    "missing-file": said(lambda: SequenceModel.from_checkpoint(folder + "/none.safetensors")),
    "unknown-device": said(lambda: SequenceModel.from_checkpoint(saved, device="tpu")),
    "ids-into-a-dense-checkpoint": said(lambda: SequenceModel.from_checkpoint(saved)(np.array([[1, 2]] * 3))),
}
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    save_checkpoint(folder / "dense.safetensors", Checkpoint(FEATURES, init_params(FEATURES)))
    return folder


@pytest.mark.slow
def test_both_models_refuse_alike(backend_name: str, folder: Path) -> None:
    specs = json.dumps([TOKENS.to_dict(), FEATURES.to_dict()])
    done = python("-c", SCRIPT, backend_name, str(folder), specs, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for door in ("backend", "numpy", "native"):
        for case, said in result[door].items():
            assert said == EXPECTED[case], f"{backend_name} {door} {case}: {said}"
    assert set(result["backend"]) == set(EXPECTED) and len(result["native"]) == len(EXPECTED) - 1
    assert max(result["same_logits"]) < 1e-6  # NumPy and framework ids give the backend's logits
    for case, said in result["checkpoint"].items():
        assert said.startswith(CHECKPOINT_EXPECTED[case]), f"{backend_name} {case}: {said}"


def test_the_numpy_check_reads_the_range_once_everything_else_passed() -> None:
    """The range is read last (the min of an empty array would raise), and not at all when the
    caller says reading it would cost a device sync."""
    from seqcore.errors import SeqcoreError
    from seqcore.model.inputs import check_inputs, checked_array

    def never() -> tuple[int, int]:
        raise AssertionError("read the ids of a refused or device array")

    check_inputs(TOKENS, (3, 2), "int", "int64", None)  # a GPU array: metadata only
    with pytest.raises(SeqcoreError, match="empty batch"):
        check_inputs(TOKENS, (3, 0), "int", "int64", never)
    with pytest.raises(SeqcoreError, match="must be integers"):
        check_inputs(TOKENS, (3, 2), "float", "float32", never)
    assert checked_array(TOKENS, [[0, 4], [2, 3]]).shape == (2, 2)  # nested lists are arrays too
    with pytest.raises(SeqcoreError, match="got ids from 0 to 7"):
        checked_array(TOKENS, [[0, 7]])
