"""Every backend x cell x impl x input kind against the NumPy reference, on shared weights.

Forward outputs and states must match the float32 reference; gradients must match central
finite differences of the reference run in float64. A swapped gate, a missing bias, a reset
gate applied in the wrong place, swapped directions or a dropout mask applied at the wrong
layer changes the outputs, the loss or the gradients far beyond these tolerances. Dropout
cases train with tests.cases.case_masks and run forward and evaluate without masks.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import pytest

from seqcore.model import reference
from seqcore.model.params import param_shapes
from seqcore.model.spec import Readout
from tests.cases import BATCH, NUM_STEPS, SPLIT, all_cases, case_data, case_masks
from tests.conftest import python

FORWARD_ATOL = 2e-5  # float32 forward, outputs of order 1
GRAD_RTOL, GRAD_ATOL = 2e-3, 2e-5  # float32 backprop vs float64 finite differences
FD_EPS = 1e-6

CASES = {name: (spec, loss) for name, spec, loss in all_cases()}


@functools.lru_cache(maxsize=None)
def worker_results(backend: str) -> dict[str, np.ndarray]:
    """One worker process per backend computes every case; tests read its results."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.npz"
        python("tests/backend_worker.py", backend, str(out), check=True)
        with np.load(out) as data:
            return dict(data)


@functools.lru_cache(maxsize=None)
def expected(name: str) -> dict[str, np.ndarray]:
    spec, loss = CASES[name]
    params, inputs, targets = case_data(spec, loss)
    masks = case_masks(spec)
    full, _ = reference.forward(spec, params, inputs)
    # The worker's two forward calls carrying the state: for a bidirectional stack this is not
    # the full run (the reverse direction of the second call starts from the first's state).
    first, state = reference.forward(spec, params, inputs[:SPLIT])
    second, state = reference.forward(spec, params, inputs[SPLIT:], state)
    outputs = np.concatenate([first, second]) if spec.readout is Readout.SEQUENCE else second
    params64 = {k: v.astype(np.float64) for k, v in params.items()}

    def loss_at(values: dict) -> float:
        return reference.loss(loss, reference.forward(spec, values, inputs, masks=masks)[0], targets)

    grads = {}
    for key in sorted(params64):
        grad = np.zeros_like(params64[key])
        for index in np.ndindex(grad.shape):
            saved = params64[key][index]
            params64[key][index] = saved + FD_EPS
            plus = loss_at(params64)
            params64[key][index] = saved - FD_EPS
            minus = loss_at(params64)
            params64[key][index] = saved
            grad[index] = (plus - minus) / (2 * FD_EPS)
        grads[key] = grad
    flat = lambda named: np.concatenate([named[k].ravel() for k in sorted(named)]).astype(np.float64)
    return {"outputs": outputs, "state": state, "params": flat(params), "grads": flat(grads),
            "loss": reference.loss(loss, reference.forward(spec, params, inputs, masks=masks)[0], targets),
            "eval_loss": reference.loss(loss, full, targets)}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_numpy_reference(backend_name: str, case: str) -> None:
    got = {k.split("/", 1)[1]: v for k, v in worker_results(backend_name).items() if k.startswith(case + "/")}
    want = expected(case)
    spec, _ = CASES[case]

    shape = (NUM_STEPS, BATCH, spec.output_size) if spec.readout is Readout.SEQUENCE else (BATCH, spec.output_size)
    assert got["outputs"].shape == shape
    np.testing.assert_allclose(got["outputs"], want["outputs"], atol=FORWARD_ATOL, rtol=0)
    for index, part in enumerate(want["state"]):  # state carried across the two forward calls
        np.testing.assert_allclose(got[f"state{index}"], part, atol=FORWARD_ATOL, rtol=0)
    np.testing.assert_array_equal(got["exported"], want["params"])  # load/export round trip is exact
    assert got["loss"] == pytest.approx(want["loss"], abs=FORWARD_ATOL)
    assert got["eval_loss"] == pytest.approx(want["eval_loss"], abs=FORWARD_ATOL)  # evaluate: no dropout

    np.testing.assert_allclose(got["grads"], want["grads"], rtol=GRAD_RTOL, atol=GRAD_ATOL)
    assert got["grad_norm"] == pytest.approx(np.linalg.norm(got["grads"]), rel=1e-5)
    np.testing.assert_allclose(got["scaled_grads"], 0.5 * got["grads"], rtol=1e-6, atol=1e-9)
    # Plain SGD: w <- w - lr * g with the (scaled) gradient, nothing else (no weight decay, no momentum).
    np.testing.assert_allclose(got["stepped"], want["params"] - 0.1 * got["scaled_grads"], rtol=0, atol=1e-6)


def test_cases_cover_every_parameter() -> None:
    """The finite-difference oracle above sees every canonical parameter of every case."""
    for spec, loss in CASES.values():
        params, _, _ = case_data(spec, loss)
        assert set(params) == set(param_shapes(spec))


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(name for name in CASES
                                         if "-scratch-" in name and name.replace("-scratch-", "-concise-") in CASES))
def test_scratch_and_concise_agree(backend_name: str, case: str) -> None:
    """The written-out cells and the framework's fused layer, on the same weights and batch."""
    results = worker_results(backend_name)
    twin = case.replace("-scratch-", "-concise-")
    for what in ("outputs", "state0", "grads"):
        np.testing.assert_allclose(results[f"{case}/{what}"], results[f"{twin}/{what}"], rtol=1e-4, atol=1e-6)
    assert results[f"{case}/loss"] == pytest.approx(float(results[f"{twin}/loss"]), abs=1e-6)
