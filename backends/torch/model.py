"""SequenceModel: input encoding -> recurrent stack (scratch or concise) -> linear head.

Inputs are time-major: (T, N) int token ids for ONEHOT / EMBEDDING, (T, N, I) float32 for DENSE.
Outputs are (T, N, O) for Readout.SEQUENCE and (N, O) for Readout.LAST; the state is (L*D, N, H)
per part (D = 2 when bidirectional). Parameters cross the seam as NumPy arrays keyed by the
canonical names of seqcore.model.params. Dropout masks (seqcore.model.dropout) come with a training call.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqcore.errors import SeqcoreError
from seqcore.model.inputs import check_inputs, checked_array
from seqcore.model.params import check_params, param_shapes
from seqcore.model.spec import Impl, InputKind, ModelSpec, Readout
from seqcore.run.checkpoint import load_checkpoint

from .concise import ConciseRecurrent
from .device import context, resolve_device
from .scratch import ScratchRecurrent

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (L*D, N, H)


class SequenceModel(nn.Module):
    """A scratch or concise recurrent model (spec.impl) built from a ModelSpec; an nn.Module.

    model(inputs) -> (outputs, state): inputs (T, N) integer ids in [0, V) or (T, N, I) float
    features (tensors or NumPy arrays, checked), time-major; outputs (N, O) for Readout.LAST or
    (T, N, O) for Readout.SEQUENCE (logits for a classifier or language model); state (h,) or
    (h, c) of (L*D, N, H) each, zeros when not given. `SequenceModel.from_checkpoint(path)`
    rebuilds a trained model.
    compiled=True (scratch models): while training, each layer's time loop runs through torch.compile.
    """

    def __init__(self, spec: ModelSpec, compiled: bool = False) -> None:
        super().__init__()
        if compiled and spec.impl is not Impl.SCRATCH:
            raise SeqcoreError("compiled=True compiles the scratch recurrence; a concise model's "
                               "nn.RNN / nn.GRU / nn.LSTM already runs as one fused kernel.")
        self.spec = spec
        if spec.input_kind is InputKind.EMBEDDING:
            self.embedding = nn.Embedding(spec.input_size, spec.embed_size)
        recurrent = ScratchRecurrent if spec.impl is Impl.SCRATCH else ConciseRecurrent
        # scratch: the GRU reset form; concise: whether dropout splits the fused layer per layer
        option = ({"gru_reset": spec.gru_reset, "compiled": compiled, "bias": spec.bias} if spec.impl is Impl.SCRATCH
                  else {"dropout": spec.dropout})
        self.rnn = recurrent(spec.cell, spec.rnn_input_size, spec.hidden_size, spec.num_layers,
                             spec.activation, spec.bidirectional, **option)
        self.head = nn.Linear(spec.output_width, spec.output_size)

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu") -> "SequenceModel":
        """The model a seqcore checkpoint (.safetensors, from either backend) holds, in eval mode, on
        `device` ('cpu', 'gpu' or 'auto'); its spec and weights come from the file."""
        checkpoint = load_checkpoint(path)
        model = cls(checkpoint.model_spec)
        model.load_params(checkpoint.params, context(resolve_device(device)))
        return model.eval()

    def parameter_map(self) -> dict[str, nn.Parameter]:
        """Every parameter keyed by its canonical name, in seqcore.model.params order."""
        found = {f"rnn.{name}": value for name, value in self.rnn.parameter_map().items()}
        found["head.weight"], found["head.bias"] = self.head.weight, self.head.bias
        if self.spec.input_kind is InputKind.EMBEDDING:
            found["embedding.weight"] = self.embedding.weight
        return {name: found[name] for name in param_shapes(self.spec)}

    def load_params(self, params: Mapping[str, np.ndarray], ctx: torch.device) -> None:
        """Place the model on device `ctx` holding exactly `params` (checked against the spec)."""
        checked = check_params(self.spec, params)
        with torch.no_grad():  # in place, before .to(): nn.RNN re-flattens its weights on the move
            for name, value in self.parameter_map().items():
                value.copy_(torch.from_numpy(np.ascontiguousarray(checked[name])))
        self.to(ctx)

    def context(self) -> torch.device:
        """The device holding the parameters (named as in the MXNet backend: mirrored surface)."""
        return self.head.weight.device

    def export_params(self) -> dict[str, np.ndarray]:
        return {name: _numpy(value) for name, value in self.parameter_map().items()}

    def export_gradients(self) -> dict[str, np.ndarray]:
        """Gradients by canonical name; zeros for a parameter that has none yet."""
        return {name: np.zeros(value.shape, np.float32) if value.grad is None else _numpy(value.grad)
                for name, value in self.parameter_map().items()}

    def begin_state(self, batch_size: int) -> State:
        shape = (self.spec.num_layers * self.spec.num_directions, batch_size, self.spec.hidden_size)
        return tuple(torch.zeros(shape, device=self.context()) for _ in range(self.spec.num_states))

    def prepare_inputs(self, inputs) -> torch.Tensor:
        """Inputs checked (seqcore.model.inputs) and on the model's device: (T, N) int64 ids or
        (T, N, I) float32 features. NumPy arrays (what the backend hands over) are checked entirely,
        the ids' range by NumPy before they move; a tensor by its shape and dtype, and its ids'
        range only on the CPU: on a GPU that read would synchronise the device every step (as
        F.one_hot also skips it there)."""
        dense = self.spec.input_kind is InputKind.DENSE
        if isinstance(inputs, torch.Tensor):
            family = ("bool" if inputs.dtype is torch.bool else "float" if inputs.dtype.is_floating_point
                      else "other" if inputs.dtype.is_complex else "int")

            def bounds() -> tuple[int, int]:
                low, high = torch.aminmax(inputs)
                return int(low), int(high)

            check_inputs(self.spec, tuple(inputs.shape), family, str(inputs.dtype).replace("torch.", ""),
                         bounds if inputs.device.type == "cpu" else None)
        else:
            inputs = torch.as_tensor(checked_array(self.spec, inputs))
        return inputs.to(device=self.context(), dtype=torch.float32 if dense else torch.int64)

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """(T, N) ids or (T, N, I) floats -> (T, N, rnn_input_size) float32."""
        if self.spec.input_kind is InputKind.DENSE:
            return inputs
        if self.spec.input_kind is InputKind.EMBEDDING:
            return self.embedding(inputs)
        return F.one_hot(inputs, self.spec.input_size).to(torch.float32)

    def forward(self, inputs: torch.Tensor, state: State | None = None,
                masks: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, State]:
        """Outputs (T, N, O) or (N, O) by spec.readout, and the new state (L*D, N, H) each.

        inputs: a tensor or a NumPy array, checked by prepare_inputs (one sentence for ids out of
        range, the wrong rank or dtype, an empty batch). state: None starts from zeros for the
        batch (inputs.shape[1] sequences).

        masks: seqcore.model.dropout's masks on the model's device (layer inputs, then the head's
        input), or None to run without dropout.
        """
        inputs = self.prepare_inputs(inputs)
        if state is None:
            state = self.begin_state(inputs.shape[1])
        layer_masks = None if masks is None else masks[:-1]
        outputs, state = self.rnn(self.encode(inputs), state, layer_masks)  # (T, N, D*H)
        features = self.last_features(outputs) if self.spec.readout is Readout.LAST else outputs
        if masks is not None:
            features = features * masks[-1]
        return self.head(features), state

    def last_features(self, outputs: torch.Tensor) -> torch.Tensor:
        """(T, N, D*H) -> (N, D*H): outputs[-1], or for two directions the forward half at T-1
        beside the reverse half at t = 0 (both directions' final states; seqcore.model.reference)."""
        if self.spec.num_directions == 1:
            return outputs[-1]
        size = self.spec.hidden_size
        return torch.cat((outputs[-1, :, :size], outputs[0, :, size:]), dim=-1)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy().copy()
