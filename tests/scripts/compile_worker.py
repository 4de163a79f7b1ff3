"""Scratch models trained through torch.compile against the same models run eagerly (PyTorch only).

Usage: python tests/scripts/compile_worker.py OUT.json

For each case, one eager and one compiled backend build the model from the same canonical
parameters and run `forward_backward` on the same batch; OUT.json holds, per case, both losses,
the largest relative gradient difference, and the number of graphs torch.compile made for it (0
would mean the compiled path never ran).
"""
from __future__ import annotations

import json
import sys

import numpy as np

from seqcore.backend import Device, load_backend
from seqcore.model.params import init_params
from seqcore.model.spec import Cell, Impl, InputKind, Loss, ModelSpec, Readout

T, N, I, H = 4, 3, 6, 5
CASES = {  # name: ModelSpec fields beyond the shared ones
    "lstm-2layer-bidirectional": {"cell": Cell.LSTM, "num_layers": 2, "bidirectional": True},
    "gru": {"cell": Cell.GRU},
    "gru-reset-before": {"cell": Cell.GRU, "gru_reset": "before"},
    "rnn": {"cell": Cell.RNN},
}


def main(out: str) -> None:
    import torch._dynamo.utils  # only after the backend loaded torch

    eager, compiled = load_backend("torch"), load_backend("torch", compile=True)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(T, N, I)).astype(np.float32)
    targets = rng.integers(0, 4, size=(T, N))
    results = {}
    for name, fields in CASES.items():
        spec = ModelSpec(impl=Impl.SCRATCH, input_size=I, hidden_size=H, output_size=4, input_kind=InputKind.DENSE,
                         readout=Readout.SEQUENCE, **fields)
        params = init_params(spec, "uniform", 0)
        figures = {}
        graphs_before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        for label, backend in (("eager", eager), ("compiled", compiled)):
            model = backend.build_model(spec, params, backend.resolve_device(Device.CPU))
            value, _ = backend.forward_backward(model, inputs, targets, None, Loss.CROSS_ENTROPY)
            figures[label] = (value, model.export_gradients())
        grads = [(figures["eager"][1][k], figures["compiled"][1][k]) for k in figures["eager"][1]]
        results[name] = {"eager_loss": figures["eager"][0], "compiled_loss": figures["compiled"][0],
                         "grad_rel_diff": max(float(np.abs(a - b).max() / max(np.abs(a).max(), 1e-12))
                                              for a, b in grads),
                         "graphs": int(torch._dynamo.utils.counters["stats"]["unique_graphs"] - graphs_before)}
    with open(out, "w") as file:
        json.dump(results, file)


if __name__ == "__main__":
    main(sys.argv[1])
