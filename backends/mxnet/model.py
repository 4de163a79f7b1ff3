"""One model for every task: input encoding -> recurrent stack -> readout -> Dense head.

Inputs are time-major: (T, N) int ids for ONEHOT / EMBEDDING, (T, N, I) float32 for DENSE.
The state is (L*D, N, H) per part (D = 2 when bidirectional). Parameters cross in the canonical
layout of seqcore.model.params (names below map onto Gluon's):

    embedding.weight (V, E)   rnn.l{k}.weight_ih ...   head.weight (O, D*H)   head.bias (O,)

Dropout masks (seqcore.model.dropout) come with a training call.
"""
from __future__ import annotations

from typing import Mapping

import mxnet as mx
import numpy as np
from mxnet import gluon, npx

from seqcore.errors import SeqcoreError
from seqcore.model.inputs import check_inputs, checked_array, dtype_family
from seqcore.model.params import check_params
from seqcore.model.spec import Impl, InputKind, ModelSpec, Readout
from seqcore.run.checkpoint import load_checkpoint

from .concise import ConciseRecurrent
from .device import context, resolve_device
from .scratch import ScratchRecurrent


class SequenceModel(gluon.Block):
    """A scratch or concise recurrent model (spec.impl) built from a ModelSpec; a gluon Block.

    model(inputs) -> (outputs, state): inputs (T, N) integer ids in [0, V) or (T, N, I) float
    features (mx.np or NumPy arrays, checked), time-major; outputs (N, O) for Readout.LAST or
    (T, N, O) for Readout.SEQUENCE (logits); state (h,) or (h, c) of (L*D, N, H) each, zeros
    when not given. `SequenceModel.from_checkpoint(path)` rebuilds a trained model.

    A plain Block because ScratchRecurrent is one (its time loop needs T; each step is a
    hybridized graph); the concise stack inside is hybridized.
    """

    def __init__(self, spec: ModelSpec, compiled: bool = False, **kwargs):
        super().__init__(**kwargs)
        if compiled:  # the signature mirrors PyTorch's SequenceModel
            raise SeqcoreError("compiled=True is PyTorch's torch.compile of the scratch time loop; "
                               "MXNet has no counterpart.")
        self.spec = spec
        recurrent = ScratchRecurrent if spec.impl is Impl.SCRATCH else ConciseRecurrent
        with self.name_scope():
            if spec.input_kind is InputKind.EMBEDDING:
                self.embedding = gluon.nn.Embedding(spec.input_size, spec.embed_size)
            # scratch: the GRU reset form; concise: whether dropout splits the fused layer per layer
            option = ({"gru_reset": spec.gru_reset, "bias": spec.bias} if spec.impl is Impl.SCRATCH
                      else {"dropout": spec.dropout})
            self.rnn = recurrent(spec.cell, spec.rnn_input_size, spec.hidden_size, spec.num_layers,
                                 spec.activation, spec.bidirectional, **option)
            # flatten=False: (T, N, D*H) -> (T, N, O); in_units given so nothing is inferred late.
            self.head = gluon.nn.Dense(spec.output_size, flatten=False, in_units=spec.output_width)
        if spec.impl is Impl.CONCISE:
            # One cached graph for the fused layer; static_alloc measured 15-35% faster per CPU
            # training step, and outputs are not overwritten by the next call (checked).
            # static_shape: memory planned once per input shape; without it a batch-512 LSTM
            # step took 929 ms against the bare Gluon loop's 608 (with it, 621). A new shape
            # (a short last batch, generation) is planned anew, once.
            self.rnn.hybridize(static_alloc=True, static_shape=True)

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu") -> "SequenceModel":
        """The model a seqcore checkpoint (.safetensors, from either backend) holds, on `device`
        ('cpu', 'gpu' or 'auto'); its spec and weights come from the file."""
        checkpoint = load_checkpoint(path)
        model = cls(checkpoint.model_spec)
        model.load_params(checkpoint.params, context(resolve_device(device)))
        return model

    def parameter_map(self) -> dict[str, gluon.Parameter]:
        """Every Gluon parameter by canonical name, in seqcore.model.params.param_shapes order."""
        names = {}
        if self.spec.input_kind is InputKind.EMBEDDING:
            names["embedding.weight"] = self.embedding.weight
        names.update({f"rnn.{name}": param for name, param in self.rnn.parameter_map().items()})
        names["head.weight"] = self.head.weight
        names["head.bias"] = self.head.bias
        return names

    def load_params(self, params: Mapping[str, np.ndarray], ctx: mx.Context) -> None:
        """Place the model on `ctx` holding exactly `params` (checked against the spec)."""
        params = check_params(self.spec, params)
        self.initialize(mx.init.Zero(), ctx=ctx, force_reinit=True)  # allocates; values set next
        for name, param in self.parameter_map().items():
            param.set_data(mx.np.array(params[name], dtype=np.float32, ctx=ctx))

    def export_params(self) -> dict[str, np.ndarray]:
        return {name: param.data().asnumpy() for name, param in self.parameter_map().items()}

    def export_gradients(self) -> dict[str, np.ndarray]:
        return {name: param.grad().asnumpy() for name, param in self.parameter_map().items()}

    def context(self) -> mx.Context:
        return self.head.weight.list_ctx()[0]

    def begin_state(self, batch_size: int) -> tuple:
        """(h,) or (h, c), zeros of (L*D, N, H)."""
        shape = (self.spec.num_layers * self.spec.num_directions, batch_size, self.spec.hidden_size)
        return tuple(mx.np.zeros(shape, dtype=np.float32, ctx=self.context())
                     for _ in range(self.spec.num_states))

    def prepare_inputs(self, inputs):
        """Inputs checked (seqcore.model.inputs) and on the model's context: (T, N) int32 ids or
        (T, N, I) float32 features, mx.np arrays. NumPy arrays (what the backend hands over) are
        checked entirely, the ids' range by NumPy before they move; an MXNet array by its shape and
        dtype, and its ids' range only on the CPU: on a GPU that read would synchronise the device
        every step."""
        dtype = np.float32 if self.spec.input_kind is InputKind.DENSE else np.int32
        if isinstance(inputs, mx.nd.NDArray):  # mx.np.ndarray is one too
            if not isinstance(inputs, mx.np.ndarray):
                inputs = inputs.as_np_ndarray()
            kind = np.dtype(inputs.dtype)

            def bounds() -> tuple[int, int]:
                ids = inputs.asnumpy()
                return ids.min(), ids.max()

            check_inputs(self.spec, tuple(inputs.shape), dtype_family(kind), kind.name,
                         bounds if inputs.ctx.device_type == "cpu" else None)
            return inputs.astype(dtype, copy=False).as_in_ctx(self.context())
        return mx.np.array(checked_array(self.spec, inputs), dtype=dtype, ctx=self.context())

    def encode(self, inputs):
        """(T, N) ids or (T, N, I) floats -> (T, N, rnn_input_size) float32."""
        if self.spec.input_kind is InputKind.EMBEDDING:
            return self.embedding(inputs)
        if self.spec.input_kind is InputKind.ONEHOT:
            return npx.one_hot(inputs, self.spec.input_size)
        return inputs

    def forward(self, inputs, state=None, masks=None):
        """Outputs (T, N, O) for Readout.SEQUENCE or (N, O) for Readout.LAST, and the new state.

        inputs: an mx.np array or a NumPy array, checked by prepare_inputs (one sentence for ids
        out of range, the wrong rank or dtype, an empty batch). state: None starts from zeros for
        the batch (inputs.shape[1] sequences).

        masks: seqcore.model.dropout's masks on the model's context (layer inputs, then the head's
        input), or None to run without dropout.
        """
        inputs = self.prepare_inputs(inputs)
        if state is None:
            state = self.begin_state(inputs.shape[1])
        layer_masks = None if masks is None else masks[:-1]
        outputs, state = self.rnn(self.encode(inputs), tuple(state), layer_masks)  # (T, N, D*H)
        features = self.last_features(outputs) if self.spec.readout is Readout.LAST else outputs
        if masks is not None:
            features = features * masks[-1]
        return self.head(features), tuple(state)

    def last_features(self, outputs):
        """(T, N, D*H) -> (N, D*H): outputs[-1], or for two directions the forward half at T-1
        beside the reverse half at t = 0 (both directions' final states; seqcore.model.reference)."""
        if self.spec.num_directions == 1:
            return outputs[-1]
        size = self.spec.hidden_size
        return mx.np.concatenate([outputs[-1, :, :size], outputs[0, :, size:]], axis=-1)
