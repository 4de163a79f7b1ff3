"""SequenceModel: input encoding -> recurrent stack (scratch or concise) -> linear head.

Inputs are time-major: (T, N) int token ids for ONEHOT / EMBEDDING, (T, N, I) float32 for DENSE.
Outputs are (T, N, O) for Readout.SEQUENCE and (N, O) for Readout.LAST. Parameters cross the
seam as NumPy arrays keyed by the canonical names of seqcore.params.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqcore.params import check_params, param_shapes
from seqcore.specs import Impl, InputKind, ModelSpec, Readout

from .concise import ConciseRecurrent
from .scratch import ScratchRecurrent

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (L, N, H)


class SequenceModel(nn.Module):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        if spec.input_kind is InputKind.EMBEDDING:
            self.embedding = nn.Embedding(spec.input_size, spec.embed_size)
        recurrent = ScratchRecurrent if spec.impl is Impl.SCRATCH else ConciseRecurrent
        self.rnn = recurrent(spec.cell, spec.rnn_input_size, spec.hidden_size, spec.num_layers,
                             spec.activation)
        self.head = nn.Linear(spec.hidden_size, spec.output_size)

    def parameter_map(self) -> dict[str, nn.Parameter]:
        """Every parameter keyed by its canonical name, in seqcore.params order."""
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
        shape = (self.spec.num_layers, batch_size, self.spec.hidden_size)
        return tuple(torch.zeros(shape, device=self.context()) for _ in range(self.spec.num_states))

    def encode(self, inputs: torch.Tensor) -> torch.Tensor:
        """(T, N) ids or (T, N, I) floats -> (T, N, rnn_input_size) float32."""
        if self.spec.input_kind is InputKind.DENSE:
            return inputs
        if self.spec.input_kind is InputKind.EMBEDDING:
            return self.embedding(inputs)
        return F.one_hot(inputs, self.spec.input_size).to(torch.float32)

    def forward(self, inputs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        outputs, state = self.rnn(self.encode(inputs), state)  # (T, N, H)
        features = outputs[-1] if self.spec.readout is Readout.LAST else outputs
        return self.head(features), state


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float32).numpy().copy()
