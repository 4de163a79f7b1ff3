"""seqcore.backend.Backend on MXNet 1.9.1 (Gluon, numpy mode).

Handles that cross the seam: the model is a SequenceModel, a state is a tuple of mx.np arrays
(L*D, N, H), a trainer is a gluon.Trainer. Everything else is NumPy or float; `train_span` reads
nothing back until its last step.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, npx

from seqcore.backend import Device, Optimizer, no_compile
from seqcore.errors import SeqcoreError
from seqcore.model.dropout import check_masks
from seqcore.model.params import check_trainer_state
from seqcore.model.spec import Loss, ModelSpec

from . import device as devices
from .model import SequenceModel


class Backend:
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

    def build_model(self, spec: ModelSpec, params: Mapping[str, np.ndarray],
                    device: str) -> SequenceModel:
        model = SequenceModel(spec)
        model.load_params(params, devices.context(device))
        return model

    def export_params(self, model: SequenceModel) -> dict[str, np.ndarray]:
        return model.export_params()

    def begin_state(self, model: SequenceModel, batch_size: int) -> tuple:
        return model.begin_state(batch_size)

    def detach_state(self, state: tuple) -> tuple:
        return tuple(part.detach() for part in state)  # detach() returns a new array in MXNet

    def forward(self, model: SequenceModel, inputs: np.ndarray,
                state: tuple) -> tuple[np.ndarray, tuple]:
        outputs, state = model(self._inputs(model, inputs), state)
        return outputs.asnumpy(), state

    def forward_backward(self, model: SequenceModel, inputs: np.ndarray, targets: np.ndarray,
                         state: tuple, loss: Loss,
                         masks: Sequence[np.ndarray] | None = None) -> tuple[float, tuple]:
        masks = self._masks(model, masks, inputs)
        value, state = _forward_backward(model, self._inputs(model, inputs),
                                         self._targets(model, targets, loss), state, loss, masks)
        return float(value), state

    def train_span(self, model: SequenceModel, trainer: gluon.Trainer,
                   batches: Sequence[tuple[np.ndarray, np.ndarray, Sequence[np.ndarray] | None]],
                   state: tuple | None, *, loss: Loss, clip: float, lrs: Sequence[float] | None,
                   carry_state: bool) -> tuple[np.ndarray, np.ndarray, tuple]:
        on_device = [(self._inputs(model, inputs), self._targets(model, targets, loss),
                      self._masks(model, masks, inputs))
                     for inputs, targets, masks in batches]  # every batch moved before the first step
        values, norms = [], []
        for k, (inputs, targets, masks) in enumerate(on_device):
            if lrs is not None:
                self.set_lr(trainer, lrs[k])
            if carry_state and state is not None:
                state = self.detach_state(state)
            else:
                state = model.begin_state(inputs.shape[1])
            value, state = _forward_backward(model, inputs, targets, state, loss, masks)
            norm = _grad_norm(model)  # () float32
            if clip > 0:
                # clip_factor's rule in float64 (a NaN norm scales, as there), applied in float32 as
                # `grad *= factor` applies a Python float: the same gradients as the step-by-step path.
                wide = norm.astype(np.float64)
                factor = mx.np.where(wide <= clip, mx.np.ones_like(wide), clip / wide).astype(np.float32)
                self.scale_gradients(model, factor)  # a () array: no read-back
            self.step(trainer)
            values.append(value.detach())  # not the graph behind it, for a span of many steps
            norms.append(norm)
        figures = mx.np.stack([mx.np.stack(values), mx.np.stack(norms)]).asnumpy()  # (2, S): the one read-back
        return figures[0].astype(np.float64), figures[1].astype(np.float64), state

    def evaluate(self, model: SequenceModel, inputs: np.ndarray, targets: np.ndarray,
                 state: tuple, loss: Loss) -> tuple[float, tuple]:
        outputs, state = model(self._inputs(model, inputs), state)
        return float(_loss(loss, outputs, self._targets(model, targets, loss))), state

    def gradients(self, model: SequenceModel) -> dict[str, np.ndarray]:
        return model.export_gradients()

    def grad_norm(self, model: SequenceModel) -> float:
        return float(_grad_norm(model))  # one read-back

    def scale_gradients(self, model: SequenceModel, factor: float) -> None:
        for param in model.parameter_map().values():
            grad = param.grad()  # the buffer the trainer reads, not a copy
            grad *= factor

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

    @staticmethod
    def _inputs(model: SequenceModel, inputs: np.ndarray):
        """(T, N) ids as int32 or (T, N, I) floats as float32, on the model's context, checked in NumPy."""
        return model.prepare_inputs(inputs)

    @staticmethod
    def _masks(model: SequenceModel, masks: Sequence[np.ndarray] | None, inputs: np.ndarray):
        """seqcore.dropout masks, checked against the model and batch, as float32 on the context."""
        checked = check_masks(model.spec, masks, *np.shape(inputs)[:2])
        if checked is None:
            return None
        return [mx.np.array(mask, dtype=np.float32, ctx=model.context()) for mask in checked]

    @staticmethod
    def _targets(model: SequenceModel, targets: np.ndarray, loss: Loss):
        """Class ids as int32 for cross-entropy, values as float32 for MSE."""
        dtype = np.float32 if Loss(loss) is Loss.MSE else np.int32
        return mx.np.array(targets, dtype=dtype, ctx=model.context())


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


def _forward_backward(model: SequenceModel, inputs, targets, state: tuple, loss: Loss, masks):
    """The () loss array of one batch already on the context; its gradients replace the last ones."""
    with autograd.record():
        outputs, state = model(inputs, state, masks)
        value = _loss(loss, outputs, targets)
    value.backward()  # grad_req 'write' (Gluon's default): each call replaces the gradients
    return value, state


def _grad_norm(model: SequenceModel):
    """Global L2 norm of the gradients, a () float32 array on the context."""
    grads = [param.grad() for param in model.parameter_map().values()]
    return mx.np.sqrt(sum((grad * grad).sum() for grad in grads))


def _loss(kind: Loss, outputs, targets):
    """Mean cross-entropy over every target (log_softmax + pick, stable) or mean((y - y_hat)^2).

    No 1/2 factor (gluon's L2Loss has one); targets (T, N) / (N,) ids or the outputs' shape.
    """
    if Loss(kind) is Loss.MSE:
        return ((outputs - targets) ** 2).mean()
    return -npx.pick(npx.log_softmax(outputs, axis=-1), targets, axis=-1).mean()


def create_backend(compile: bool = False) -> Backend:
    return Backend(compile)
