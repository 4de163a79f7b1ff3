"""The PyTorch implementation of seqcore.backend.Backend.

Handles: the model is a SequenceModel, the state a tuple of (L*D, N, H) tensors, the trainer a
torch.optim optimizer. NumPy inputs are moved to the model's device on every call (a span's all
at once); `train_span` reads nothing back until its last step.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from seqcore.backend import Device, Optimizer
from seqcore.errors import SeqcoreError
from seqcore.model.dropout import check_masks
from seqcore.model.params import check_trainer_state
from seqcore.model.spec import Loss, ModelSpec

from . import device as devices
from .model import SequenceModel, State, _numpy

_MOMENTS = (("m", "exp_avg"), ("v", "exp_avg_sq"))  # canonical adam.m / adam.v -> Adam's state keys


class Backend:
    """compile=True: scratch models train with each layer's time loop through torch.compile."""

    name = "torch"

    def __init__(self, compile: bool = False) -> None:
        self.compile = compile

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__, "numpy": np.__version__,
                "cuda": torch.version.cuda or "none",
                "device": devices.describe("gpu" if torch.cuda.is_available() else "cpu")}

    def resolve_device(self, device: Device) -> str:
        return devices.resolve_device(device)

    def build_model(self, spec: ModelSpec, params: Mapping[str, np.ndarray],
                    device: str) -> SequenceModel:
        model = SequenceModel(spec, compiled=self.compile)  # always fresh: never an old run's weights
        model.load_params(params, devices.context(device))
        return model

    def export_params(self, model: SequenceModel) -> dict[str, np.ndarray]:
        return model.export_params()

    def begin_state(self, model: SequenceModel, batch_size: int) -> State:
        return model.begin_state(batch_size)

    def detach_state(self, state: State) -> State:
        return tuple(part.detach() for part in state)

    def forward(self, model: SequenceModel, inputs: np.ndarray,
                state: State) -> tuple[np.ndarray, State]:
        # no_grad rather than inference_mode: the returned state may feed a later forward_backward.
        with torch.no_grad():
            outputs, state = model(_inputs(model, inputs), _state(model, state, inputs))
        return outputs.cpu().numpy(), state

    def forward_backward(self, model: SequenceModel, inputs: np.ndarray, targets: np.ndarray,
                         state: State, loss: Loss,
                         masks: Sequence[np.ndarray] | None = None) -> tuple[float, State]:
        value, state = _forward_backward(model, _inputs(model, inputs), _targets(model, targets, loss),
                                         _state(model, state, inputs), loss, _masks(model, masks, inputs))
        return value.item(), state

    def train_span(self, model: SequenceModel, trainer: torch.optim.Optimizer,
                   batches: Sequence[tuple[np.ndarray, np.ndarray, Sequence[np.ndarray] | None]],
                   state: State | None, *, loss: Loss, clip: float, lrs: Sequence[float] | None,
                   carry_state: bool) -> tuple[np.ndarray, np.ndarray, State]:
        on_device = [(_inputs(model, inputs), _targets(model, targets, loss), _masks(model, masks, inputs))
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
                # mul_ applies a Python float: the same gradients as the step-by-step path.
                wide = norm.double()
                factor = torch.where(wide <= clip, torch.ones_like(wide), clip / wide).float()
                self.scale_gradients(model, factor)  # a () tensor: no read-back
            trainer.step()
            values.append(value.detach())  # not the graph behind it, for a span of many steps
            norms.append(norm)
        figures = torch.stack([torch.stack(values), torch.stack(norms)]).cpu().numpy()  # (2, S): the one read-back
        return figures[0].astype(np.float64), figures[1].astype(np.float64), state

    def evaluate(self, model: SequenceModel, inputs: np.ndarray, targets: np.ndarray, state: State,
                 loss: Loss) -> tuple[float, State]:
        with torch.no_grad():
            outputs, state = model(_inputs(model, inputs), _state(model, state, inputs))
            value = _loss(loss, outputs, _targets(model, targets, loss))
        return value.item(), state

    def gradients(self, model: SequenceModel) -> dict[str, np.ndarray]:
        return model.export_gradients()

    def grad_norm(self, model: SequenceModel) -> float:
        return _grad_norm(model).item()  # the one host sync

    def scale_gradients(self, model: SequenceModel, factor: float) -> None:
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.mul_(factor)

    def make_trainer(self, model: SequenceModel, optimizer: Optimizer,
                     lr: float) -> torch.optim.Optimizer:
        params = list(model.parameter_map().values())
        _check_lr(lr)
        if Optimizer(optimizer) is Optimizer.SGD:
            return torch.optim.SGD(params, lr=lr, momentum=0.0)
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)

    def step(self, trainer: torch.optim.Optimizer) -> None:
        trainer.step()

    def set_lr(self, trainer: torch.optim.Optimizer, lr: float) -> None:
        _check_lr(lr)
        for group in trainer.param_groups:
            group["lr"] = lr

    def export_trainer_state(self, model: SequenceModel,
                             trainer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
        if not isinstance(trainer, torch.optim.Adam):
            return {}  # SGD without momentum keeps nothing between steps
        arrays = {"adam.step": np.zeros(1, np.int64)}
        for name, param in model.parameter_map().items():
            state = trainer.state.get(param)  # created by the first step: zeros before it
            if state:
                arrays["adam.step"][0] = int(state["step"])  # the same count on every parameter
            for key, slot in _MOMENTS:
                arrays[f"adam.{key}/{name}"] = (_numpy(state[slot]) if state
                                                else np.zeros(param.shape, np.float32))
        return arrays

    def load_trainer_state(self, model: SequenceModel, trainer: torch.optim.Optimizer,
                           arrays: Mapping[str, np.ndarray]) -> None:
        adam = isinstance(trainer, torch.optim.Adam)
        check_trainer_state(model.spec, adam, arrays)
        if not adam:
            return
        step = float(arrays["adam.step"][0])
        for name, param in model.parameter_map().items():
            moments = {slot: torch.tensor(np.asarray(arrays[f"adam.{key}/{name}"], np.float32),
                                          device=param.device) for key, slot in _MOMENTS}
            # step: a float32 CPU scalar, as Adam keeps it when neither capturable nor fused.
            trainer.state[param] = {"step": torch.tensor(step, dtype=torch.float32), **moments}

    def state_to_numpy(self, state: State) -> list[np.ndarray]:
        return [_numpy(part) for part in state]

    def state_from_numpy(self, model: SequenceModel, arrays: Sequence[np.ndarray]) -> State:
        return tuple(torch.tensor(np.asarray(part, np.float32), device=model.context())
                     for part in arrays)


def create_backend(compile: bool = False) -> Backend:
    return Backend(compile)


def _forward_backward(model: SequenceModel, inputs: torch.Tensor, targets: torch.Tensor, state: State,
                      loss: Loss, masks: list[torch.Tensor] | None) -> tuple[torch.Tensor, State]:
    """The () loss tensor of one batch already on the device; its gradients replace the last ones."""
    model.zero_grad(set_to_none=True)  # replace, never accumulate, the last batch's gradients
    outputs, state = model(inputs, state, masks)
    value = _loss(loss, outputs, targets)
    value.backward()
    # backward() freed the graph behind the state, so keeping it attached could only fail later.
    return value, tuple(part.detach() for part in state)


def _grad_norm(model: SequenceModel) -> torch.Tensor:
    """Global L2 norm of the gradients, a () float32 tensor on the device (0 without gradients)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros((), device=model.context())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _inputs(model: SequenceModel, inputs: np.ndarray) -> torch.Tensor:
    """(T, N) ids as int64, or (T, N, I) float32 for DENSE, on the model's device, checked in NumPy."""
    return model.prepare_inputs(inputs)


def _targets(model: SequenceModel, targets: np.ndarray, loss: Loss) -> torch.Tensor:
    dtype = torch.float32 if Loss(loss) is Loss.MSE else torch.int64
    return torch.as_tensor(np.asarray(targets), dtype=dtype).to(model.context())


def _state(model: SequenceModel, state: State | None, inputs: np.ndarray) -> State:
    """None -> zeros; NumPy or tensors -> float32 tensors on the device (tensors pass unchanged)."""
    if state is None:
        return model.begin_state(np.shape(inputs)[1])
    device = model.context()
    return tuple(torch.as_tensor(part, dtype=torch.float32, device=device) for part in state)


def _masks(model: SequenceModel, masks: Sequence[np.ndarray] | None,
           inputs: np.ndarray) -> list[torch.Tensor] | None:
    """seqcore.dropout masks, checked against the model and batch, as float32 on the device."""
    checked = check_masks(model.spec, masks, *np.shape(inputs)[:2])
    if checked is None:
        return None
    return [torch.tensor(mask, device=model.context()) for mask in checked]


def _check_lr(lr: float) -> None:
    # torch's SGD passes -lr as a float32 scalar: beyond ~3.4e38 it fails with a bare RuntimeError.
    if not 0 < lr <= float(np.finfo(np.float32).max):
        raise SeqcoreError(
            f"The learning rate must be positive and fit in float32 (<= 3.4e38), got {lr!r}.")


def _loss(kind: Loss, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every target id, or mean of (y - y_hat)^2 (no 1/2)."""
    if Loss(kind) is Loss.MSE:
        if targets.shape != outputs.shape:
            raise SeqcoreError(f"MSE targets have shape {tuple(targets.shape)}, "
                               f"the outputs {tuple(outputs.shape)}.")
        return F.mse_loss(outputs, targets)
    if targets.shape != outputs.shape[:-1]:
        raise SeqcoreError(f"Cross-entropy targets have shape {tuple(targets.shape)}, "
                           f"expected {tuple(outputs.shape[:-1])}.")
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))
