"""Runs every numerics case on one backend, in its own process, through the Backend protocol.

Usage: python tests/backend_worker.py BACKEND OUT.npz

For each case it stores, keyed "<case>/<what>": the outputs of the full sequence run as two
calls with the state carried between them, the final state, the mean loss and gradients of
`forward_backward` (with the case's dropout masks, if any), the loss of `evaluate` (never
masked), the exported parameters, the gradient norm, the gradients (the model's own
`export_gradients`) after `clip_gradients` to half their norm, and the parameters after one SGD
step of lr 0.1.
"""
from __future__ import annotations

import sys

import numpy as np

from seqcore.backend import Device, Optimizer, load_backend
from seqcore.model.spec import Readout
from tests.cases import SPLIT, all_cases, case_data, case_masks


def run_case(backend, spec, loss, results: dict, name: str) -> None:
    params, inputs, targets = case_data(spec, loss)
    model = backend.build_model(spec, params, backend.resolve_device(Device.CPU))
    batch = inputs.shape[1]
    first, state = backend.forward(model, inputs[:SPLIT], backend.begin_state(model, batch))
    second, state = backend.forward(model, inputs[SPLIT:], state)
    outputs = np.concatenate([first, second]) if spec.readout is Readout.SEQUENCE else second
    results[f"{name}/outputs"] = outputs
    for index, part in enumerate(state):
        results[f"{name}/state{index}"] = np.asarray(_to_numpy(part))
    results[f"{name}/exported"] = _flat(backend.export_params(model))

    value, _ = backend.forward_backward(model, inputs, targets, backend.begin_state(model, batch), loss,
                                        case_masks(spec))
    results[f"{name}/loss"] = np.float64(value)
    results[f"{name}/eval_loss"] = np.float64(
        backend.evaluate(model, inputs, targets, backend.begin_state(model, batch), loss)[0])
    grads = model.export_gradients()
    results[f"{name}/grads"] = _flat(grads)
    norm = backend.grad_norm(model)
    results[f"{name}/grad_norm"] = np.float64(norm)
    # The clipping primitive with a limit of half the norm: factor (norm / 2) / norm, exactly 0.5.
    backend.clip_gradients(model, backend.grad_norm_on_device(model), norm / 2)
    results[f"{name}/scaled_grads"] = _flat(model.export_gradients())
    trainer = backend.make_trainer(model, Optimizer.SGD, 0.1)
    backend.step(trainer)
    results[f"{name}/stepped"] = _flat(backend.export_params(model))


def _flat(named: dict) -> np.ndarray:
    """Parameters in canonical (sorted-name) order as one vector, float64."""
    return np.concatenate([np.asarray(named[k], dtype=np.float64).ravel() for k in sorted(named)])


def _to_numpy(array) -> np.ndarray:
    """An MXNet array (asnumpy) or a PyTorch tensor (detach, cpu, numpy), without importing either."""
    if hasattr(array, "asnumpy"):
        return array.asnumpy()
    return array.detach().cpu().numpy()


def main() -> None:
    name, out = sys.argv[1], sys.argv[2]
    backend = load_backend(name)
    results: dict = {}
    for case_name, spec, loss in all_cases():
        run_case(backend, spec, loss, results, case_name)
    np.savez(out, **results)


if __name__ == "__main__":
    main()
