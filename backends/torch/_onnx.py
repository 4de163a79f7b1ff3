"""ONNX export of the plain PyTorch module (the optional `onnx` extra), and its check.

Torch-only: there is no Gluon counterpart, so this private file sits outside the mirrored
surface. The graph's inputs are `inputs` ((T, N) int64 ids, or (T, N, I) float32 features) and
the initial state `h0` (and `c0` for an LSTM), each (L*D, N, H); its outputs are `logits`
((T, N, O), or (N, O) for a last-step readout) and the final state `hn` (and `cn`). Time and
batch sizes are dynamic. Uses the TorchScript exporter (`dynamo=False`), which needs no
onnxscript.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from seqcore.interchange import probe_inputs
from seqcore.model.spec import ModelSpec, Readout

from .interchange import PlainModel

OPSET = 17


class _Graph(nn.Module):
    """PlainModel with the state as separate tensors in and out, as ONNX wants them."""

    def __init__(self, model: PlainModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor, *state: torch.Tensor):
        logits, final = self.model(inputs, tuple(state))
        return (logits, *final)


def state_names(spec: ModelSpec) -> tuple[list[str], list[str]]:
    """(input state names, output state names): h0 / hn, and c0 / cn for an LSTM."""
    parts = "hc"[:spec.num_states]
    return [f"{p}0" for p in parts], [f"{p}n" for p in parts]


def export_onnx(path: str | Path, spec: ModelSpec, arrays: Mapping[str, np.ndarray]) -> None:
    """Write the plain module holding `arrays` (PyTorch names) as an ONNX graph at `path`."""
    model = PlainModel(spec)
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in arrays.items()},
                          strict=True)
    model.eval()
    inputs = torch.from_numpy(probe_inputs(spec))
    state = tuple(torch.zeros(spec.num_layers * spec.num_directions, inputs.shape[1], spec.hidden_size)
                  for _ in range(spec.num_states))
    state_in, state_out = state_names(spec)
    dynamic = {"inputs": {0: "time", 1: "batch"},
               "logits": {0: "batch"} if spec.readout is Readout.LAST else {0: "time", 1: "batch"},
               **{name: {1: "batch"} for name in state_in + state_out}}
    with warnings.catch_warnings():  # the exporter warns about batch_first and RNN shapes it handles
        warnings.simplefilter("ignore")
        torch.onnx.export(_Graph(model), (inputs, *state), str(path), input_names=["inputs", *state_in],
                          output_names=["logits", *state_out], dynamic_axes=dynamic, opset_version=OPSET,
                          dynamo=False)


def onnx_forward(path: str | Path, spec: ModelSpec, inputs: np.ndarray,
                 state: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run the ONNX file with onnxruntime on the CPU: logits and final state as NumPy."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state_in, _ = state_names(spec)
    feeds = {"inputs": inputs, **{name: np.asarray(s, np.float32) for name, s in zip(state_in, state)}}
    logits, *final = session.run(None, feeds)
    return logits, final
