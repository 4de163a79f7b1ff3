"""Checkpoint and resume: trainer state and recurrent state out of a backend and back in.

A run stopped after 3 steps and resumed on a fresh model and trainer from the exported arrays
must continue bit for bit like the uninterrupted run (same backend, CPU); a state exported by one
backend must load into the other and give the exporter's next step, up to float32 rounding.
Each backend runs tests/scripts/trainer_state_worker.py in its own process; they meet through
.npz files.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest

from seqcore.backend import BACKENDS
from seqcore.model.params import param_shapes
from tests.cases import BATCH
from tests.conftest import python, require_backend
from tests.scripts.trainer_state_worker import CASES, STEPS, STOP

pytestmark = pytest.mark.slow  # every test here runs a framework in a subprocess

WORKER = "tests/scripts/trainer_state_worker.py"
# MXNet's adam_update takes beta2 as float32, so its (1 - beta2) is 0.0009999871 against PyTorch's
# 0.001: its v is 1.3e-5 smaller, relatively, on every element. Both within 5e-5 of the array's scale.
STATE_RTOL = 5e-5


@functools.lru_cache(maxsize=None)
def results(backend: str) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.npz"
        python(WORKER, backend, str(out), check=True)
        with np.load(out) as data:
            return dict(data)


@functools.lru_cache(maxsize=None)
def crossed(loader: str, exporter: str) -> dict[str, np.ndarray]:
    """Step 4 on `loader`, resumed from `exporter`'s checkpoint after step 3."""
    with tempfile.TemporaryDirectory() as tmp:
        exported, out = Path(tmp) / "exported.npz", Path(tmp) / "results.npz"
        np.savez(exported, **results(exporter))
        python(WORKER, loader, str(out), str(exported), check=True)
        with np.load(out) as data:
            return dict(data)


def part(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def adam_shapes(case: str) -> dict[str, tuple[int, ...]]:
    shapes = {"adam.step": (1,)}
    for name, shape in param_shapes(CASES[case]).items():
        shapes[f"adam.m/{name}"] = shapes[f"adam.v/{name}"] = shape
    return shapes


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_resumed_run_equals_uninterrupted_run(backend_name: str, case: str, optimizer: str) -> None:
    got = part(results(backend_name), f"{case}/{optimizer}/")
    reloaded, saved = part(got, "reloaded/"), part(got, f"at{STOP}/")
    assert sorted(reloaded) == sorted(saved)
    for name, value in saved.items():  # export right after load gives back what was loaded
        np.testing.assert_array_equal(reloaded[name], value, err_msg=name)
    np.testing.assert_array_equal(got["resumed_losses"], got["losses"][STOP:])
    resumed, uninterrupted = part(got, "resumed/"), part(got, f"at{STEPS}/")
    assert sorted(resumed) == sorted(uninterrupted)
    for name, value in uninterrupted.items():  # params, trainer state and recurrent state, bit for bit
        np.testing.assert_array_equal(resumed[name], value, err_msg=name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_exported_trainer_state_has_canonical_names(backend_name: str, case: str) -> None:
    got = results(backend_name)
    assert not part(got, f"{case}/sgd/at{STOP}/trainer/")  # SGD without momentum: {}
    shapes = adam_shapes(case)
    for prefix, step in ((f"{case}/fresh/", 0), (f"{case}/adam/at{STOP}/trainer/", STOP)):
        state = part(got, prefix)
        assert {k: v.shape for k, v in state.items()} == shapes
        assert state["adam.step"].dtype == np.int64 and state["adam.step"][0] == step
        assert all(v.dtype == np.float32 for k, v in state.items() if k != "adam.step")
    fresh = part(got, f"{case}/fresh/")
    assert all(not v.any() for k, v in fresh.items() if k != "adam.step")  # zeros before the first step
    assert part(got, f"{case}/adam/at{STOP}/trainer/")["adam.v/head.bias"].all()


@pytest.mark.parametrize("case", sorted(CASES))
def test_recurrent_state_through_numpy_continues_exactly(backend_name: str, case: str) -> None:
    got = results(backend_name)
    spec = CASES[case]
    arrays = [got[f"{case}/numpy_state{i}"] for i in range(spec.num_states)]
    assert f"{case}/numpy_state{spec.num_states}" not in got  # h, and c for LSTM only
    for array in arrays:
        assert array.dtype == np.float32 and array.shape == (spec.num_layers, BATCH, spec.hidden_size)
    original, restored = part(got, f"{case}/original/"), part(got, f"{case}/restored/")
    assert sorted(original) == sorted(restored)
    for name, value in original.items():  # forward outputs, evaluate and forward_backward losses, grads
        np.testing.assert_array_equal(restored[name], value, err_msg=name)


@pytest.mark.parametrize("kind, fragments", [
    ("missing", ["Adam trainer", "lacks adam.step", "and 18 more"]),
    ("dropped", ["Adam trainer", "lacks adam.v/head.bias"]),
    ("unexpected", ["Adam trainer", "unexpected adam.m/extra.weight"]),
    ("shape", ["adam.m/head.bias has shape (3,)", "needs (7,)"]),
    ("step_shape", ["adam.step has shape ()", "needs (1,)"]),
    ("adam_into_sgd", ["SGD trainer", "unexpected adam.step"]),
    ("lstm_into_gru", ["adam.m/rnn.l0.weight_ih has shape (20, 7)", "needs (15, 7)"]),
])
def test_mismatched_trainer_state_is_one_sentence(backend_name: str, kind: str,
                                                  fragments: list[str]) -> None:
    message = str(results(backend_name)[f"errors/{kind}"])
    assert message, f"loading the {kind} trainer state raised no SeqcoreError"
    assert "\n" not in message and message.endswith(".")
    for fragment in fragments:
        assert fragment in message, message


def require_both() -> None:
    for name in BACKENDS:
        require_backend(name)


@pytest.mark.parametrize("case", sorted(CASES))
def test_backends_export_the_same_trainer_state(case: str) -> None:
    require_both()
    prefix = f"{case}/adam/at{STOP}/trainer/"
    mxnet, torch = part(results("mxnet"), prefix), part(results("torch"), prefix)
    assert sorted(mxnet) == sorted(torch)
    for name, value in torch.items():
        assert (mxnet[name].shape, mxnet[name].dtype) == (value.shape, value.dtype), name
        # Same weights and batches; the runs differ by float32 rounding (and MXNet's beta2, above).
        np.testing.assert_allclose(mxnet[name], value, rtol=0, atol=STATE_RTOL * np.abs(value).max(),
                                   err_msg=name)


@pytest.mark.parametrize("exporter, loader", [("mxnet", "torch"), ("torch", "mxnet")])
@pytest.mark.parametrize("case", sorted(CASES))
def test_trainer_state_loads_into_the_other_backend(case: str, exporter: str, loader: str) -> None:
    require_both()
    own = results(exporter)
    got = crossed(loader, exporter)
    reloaded, saved = part(got, f"{case}/reloaded/"), part(own, f"{case}/adam/at{STOP}/trainer/")
    assert sorted(reloaded) == sorted(saved)
    for name, value in saved.items():  # loaded, then exported again: the very same arrays
        np.testing.assert_array_equal(reloaded[name], value, err_msg=name)
    assert float(got[f"{case}/loss4"]) == pytest.approx(own[f"{case}/adam/losses"][STOP], rel=1e-5)
    want = part(own, f"{case}/adam/at{STOP + 1}/params/")
    stepped = part(got, f"{case}/params4/")
    assert sorted(stepped) == sorted(want)
    for name, value in want.items():  # a wrong step count, or m and v swapped, moves weights by ~lr
        np.testing.assert_allclose(stepped[name], value, rtol=0, atol=2e-6, err_msg=name)
