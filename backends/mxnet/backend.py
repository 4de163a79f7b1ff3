"""The MXNet 1.9.1 primitives of seqcore.backend.Backend (Gluon, numpy mode; the span loop is the
base class's).

Handles that cross the seam: the model is a SequenceModel, a state is a tuple of mx.np arrays
(L*D, N, H), a trainer is a gluon.Trainer, a batch on the device an (inputs, targets, masks)
tuple of mx.np arrays, a figure a () mx.np array. Everything else is NumPy or float; only `read`
waits for the engine.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, npx

from seqcore import backend as seam
from seqcore.backend import Arrays, Device, Masks, Optimizer, no_compile
from seqcore.errors import SeqcoreError
from seqcore.model.dropout import check_batch_masks
from seqcore.model.params import check_trainer_state
from seqcore.model.seq2seq import LOSSES, Seq2SeqSpec
from seqcore.model.spec import Loss, ModelSpec

from . import device as devices
from .model import SequenceModel
from .seq2seq import Seq2SeqModel, masked_loss


_OnDevice = tuple  # (inputs, targets, masks): mx.np arrays (or tuples of them), masks a list or None


class Backend(seam.Backend):
    """compile: PyTorch's torch.compile has no MXNet counterpart, so only False is accepted."""

    name = "mxnet"

    def __init__(self, compile: bool = False) -> None:
        if compile:
            raise SeqcoreError(no_compile(self.name))

    def versions(self) -> dict[str, str]:
        try:
            num_gpus = mx.context.num_gpus()
        except mx.base.MXNetError:
            num_gpus = 0
        return {"mxnet": mx.__version__, "numpy": np.__version__,
                "device": devices.describe("gpu" if num_gpus else "cpu")}

    def resolve_device(self, device: Device) -> str:
        return devices.resolve_device(device)

    def build_model(self, spec: ModelSpec | Seq2SeqSpec, params: Mapping[str, np.ndarray],
                    device: str) -> SequenceModel | Seq2SeqModel:
        model = Seq2SeqModel(spec) if isinstance(spec, Seq2SeqSpec) else SequenceModel(spec)
        model.load_params(params, devices.context(device))
        return model

    def export_params(self, model: SequenceModel) -> dict[str, np.ndarray]:
        return model.export_params()

    def begin_state(self, model: SequenceModel, batch_size: int) -> tuple:
        return model.begin_state(batch_size)

    def detach_state(self, state: tuple) -> tuple:
        return tuple(part.detach() for part in state)  # detach() returns a new array in MXNet

    def forward(self, model: SequenceModel, inputs: Arrays,
                state: Optional[tuple]) -> tuple[np.ndarray, tuple]:
        outputs, state = model(_inputs(model, inputs), state)
        return outputs.asnumpy(), state

    def evaluate(self, model: SequenceModel, inputs: Arrays, targets: Arrays,
                 state: Optional[tuple], loss: Loss) -> tuple[float, tuple]:
        outputs, state = model(_inputs(model, inputs), state)
        return float(_loss(loss, outputs, _targets(model, targets, loss))), state

    def to_device(self, model: SequenceModel, inputs: Arrays, targets: Arrays, masks: Masks,
                  loss: Loss) -> _OnDevice:
        return _inputs(model, inputs), _targets(model, targets, loss), _masks(model, masks, inputs)

    def backward(self, model: SequenceModel, batch: _OnDevice, state: tuple, loss: Loss) -> tuple:
        inputs, targets, masks = batch
        with autograd.record():
            outputs, state = model(inputs, state, masks)
            value = _loss(loss, outputs, targets)
        value.backward()  # grad_req 'write' (Gluon's default): each call replaces the gradients
        return value.detach(), state  # the loss without its graph, for a span of many steps

    def grad_norm_on_device(self, model: SequenceModel):
        grads = [param.grad() for param in model.parameter_map().values()]
        return mx.np.sqrt(sum((grad * grad).sum() for grad in grads))  # () float32

    def clip_gradients(self, model: SequenceModel, norm, max_norm: float) -> None:
        wide = norm.astype(np.float64)
        factor = mx.np.where(wide <= max_norm, mx.np.ones_like(wide), max_norm / wide).astype(np.float32)
        for param in model.parameter_map().values():
            grad = param.grad()  # the buffer the trainer reads, not a copy
            grad *= factor  # a () array: no read-back

    def read(self, figures: Sequence) -> np.ndarray:
        return mx.np.stack(list(figures)).asnumpy().astype(np.float64)

    def make_trainer(self, model: SequenceModel, optimizer: Optimizer, lr: float) -> gluon.Trainer:
        if Optimizer(optimizer) is Optimizer.SGD:
            rule = mx.optimizer.SGD(learning_rate=lr, momentum=0.0, wd=0.0)
        else:
            rule = _Adam(learning_rate=lr, beta1=0.9, beta2=0.999, epsilon=1e-8, wd=0.0)
        return gluon.Trainer(model.collect_params(), rule, kvstore=None)

    def step(self, trainer: gluon.Trainer) -> None:
        trainer.step(1)  # step(batch_size) would divide again: the gradients are already means

    def set_lr(self, trainer: gluon.Trainer, lr: float) -> None:
        trainer.set_learning_rate(lr)

    def export_trainer_state(self, model: SequenceModel,
                             trainer: gluon.Trainer) -> dict[str, np.ndarray]:
        rule = trainer.optimizer
        if not isinstance(rule, mx.optimizer.Adam):
            return {}  # SGD without momentum keeps nothing between steps
        updater, = trainer._updaters  # one per context, and a model lives on one
        arrays = {"adam.step": np.array([rule.num_update], np.int64)}
        for name, param in model.parameter_map().items():
            # (mean, var) by the trainer's index of the parameter, made by its first update.
            state = updater.states.get(trainer._param2idx[param.name])
            for part, key in enumerate("mv"):
                arrays[f"adam.{key}/{name}"] = (state[part].asnumpy() if state
                                                else np.zeros(param.shape, np.float32))
        return arrays

    def load_trainer_state(self, model: SequenceModel, trainer: gluon.Trainer,
                           arrays: Mapping[str, np.ndarray]) -> None:
        rule = trainer.optimizer
        adam = isinstance(rule, mx.optimizer.Adam)
        check_trainer_state(model.spec, adam, arrays)
        if not adam:
            return
        updater, = trainer._updaters
        step = int(arrays["adam.step"][0])
        for name, param in model.parameter_map().items():
            index = trainer._param2idx[param.name]
            # Classic NDArrays on the weight's context, as Adam.create_state makes them.
            updater.states[index] = tuple(
                mx.nd.array(arrays[f"adam.{key}/{name}"], ctx=model.context(), dtype=np.float32)
                for key in "mv")
            updater.states_synced[index] = True
            # t of the bias correction and of _Adam's epsilon: the next update counts step + 1.
            rule._index_update_count[index] = step
        rule.num_update = step

    def state_to_numpy(self, state: tuple) -> list[np.ndarray]:
        return [part.asnumpy() for part in state]

    def state_from_numpy(self, model: SequenceModel, arrays: Sequence[np.ndarray]) -> tuple:
        return tuple(mx.np.array(part, dtype=np.float32, ctx=model.context()) for part in arrays)


class _Adam(mx.optimizer.Adam):
    """Adam with epsilon added to the bias-corrected sqrt(v_hat), as in the Adam paper's
    Algorithm 1 and PyTorch. MXNet adds it to the uncorrected sqrt(v), an epsilon effectively
    1/sqrt(1 - beta2^t) larger (~32x at step 1), which moves small-gradient weights by up to
    ~0.35 lr differently; epsilon * sqrt(1 - beta2^t) inside MXNet's update is exactly the former.
    """

    def update(self, index, weight, grad, state):
        step = self._index_update_count.get(index, self.begin_num_update) + 1  # the t update() counts
        epsilon = self.epsilon
        self.epsilon = epsilon * math.sqrt(1.0 - self.beta2 ** step)
        try:
            super().update(index, weight, grad, state)
        finally:
            self.epsilon = epsilon


def _inputs(model: SequenceModel, inputs: Arrays):
    """(T, N) ids as int32 or (T, N, I) floats as float32, on the model's context; a tuple's arrays
    by their own dtypes (`_member`)."""
    if isinstance(inputs, tuple):
        return tuple(_member(model, part) for part in inputs)
    return model.prepare_inputs(inputs)  # checked in NumPy (ids in [0, V), rank, dtype) before it moves


def _targets(model: SequenceModel, targets: Arrays, loss: Loss):
    """Class ids as int32 for cross-entropy, values as float32 for MSE; a tuple's arrays by their dtypes."""
    if isinstance(targets, tuple):
        return tuple(_member(model, part) for part in targets)
    dtype = np.float32 if Loss(loss) is Loss.MSE else np.int32
    return mx.np.array(targets, dtype=dtype, ctx=model.context())


def _member(model: SequenceModel, part: np.ndarray):
    """An array of a tuple batch on the context: integers (ids, lengths) as int32, others float32."""
    array = np.asarray(part)
    dtype = np.int32 if array.dtype.kind in "iu" else np.float32
    return mx.np.array(array, dtype=dtype, ctx=model.context())


def _masks(model: SequenceModel, masks: Masks, inputs: Arrays):
    """seqcore.dropout masks, checked against the model and batch, as float32 on the context."""
    checked = check_batch_masks(model.spec, masks, inputs)
    if checked is None:
        return None
    return [mx.np.array(mask, dtype=np.float32, ctx=model.context()) for mask in checked]


def _loss(kind: Loss, outputs, targets):
    """Mean cross-entropy over every target (log_softmax + pick, stable) or mean((y - y_hat)^2).

    No 1/2 factor (gluon's L2Loss has one); targets (T, N) / (N,) ids or the outputs' shape; an
    encoder-decoder's masked losses read targets (ids (T, N), valid lengths (N,)).
    """
    if Loss(kind) in LOSSES:
        return masked_loss(outputs, targets[0], targets[1], kind)
    if Loss(kind) is Loss.MSE:
        return ((outputs - targets) ** 2).mean()
    return -npx.pick(npx.log_softmax(outputs, axis=-1), targets, axis=-1).mean()


def create_backend(compile: bool = False) -> Backend:
    return Backend(compile)
