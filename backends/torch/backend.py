"""The PyTorch primitives of seqcore.backend.Backend (its span loop is the base class's).

Handles: the model is a SequenceModel, the state a tuple of (L*D, N, H) tensors, the trainer a
torch.optim optimizer, a batch on the device an (inputs, targets, masks) tuple of tensors, a
figure a () tensor. NumPy batches are moved to the model's device by `to_device` (a span's all
at once); only `read` waits for the device.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from seqcore import backend as seam
from seqcore.backend import Arrays, Device, Masks, Optimizer, first_array
from seqcore.errors import SeqcoreError
from seqcore.model.dropout import check_batch_masks
from seqcore.model.params import check_trainer_state
from seqcore.model.seq2seq import LOSSES, Seq2SeqSpec
from seqcore.model.spec import Loss, ModelSpec

from . import device as devices
from .model import SequenceModel, State, _numpy
from .seq2seq import Seq2SeqModel, masked_loss

_MOMENTS = (("m", "exp_avg"), ("v", "exp_avg_sq"))  # canonical adam.m / adam.v -> Adam's state keys
_Tensors = Union[torch.Tensor, tuple]  # one tensor, or a tuple of them (a tuple batch)
_OnDevice = tuple  # (inputs, targets, masks): _Tensors, _Tensors, list[torch.Tensor] | None


class Backend(seam.Backend):
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

    def build_model(self, spec: ModelSpec | Seq2SeqSpec, params: Mapping[str, np.ndarray],
                    device: str) -> SequenceModel | Seq2SeqModel:
        # always fresh: never an old run's weights; an encoder-decoder for a Seq2SeqSpec
        family = Seq2SeqModel if isinstance(spec, Seq2SeqSpec) else SequenceModel
        model = family(spec, compiled=self.compile)
        model.load_params(params, devices.context(device))
        return model

    def export_params(self, model: SequenceModel) -> dict[str, np.ndarray]:
        return model.export_params()

    def begin_state(self, model: SequenceModel, batch_size: int) -> State:
        return model.begin_state(batch_size)

    def detach_state(self, state: State) -> State:
        return tuple(part.detach() for part in state)

    def forward(self, model: SequenceModel, inputs: Arrays,
                state: State | None) -> tuple[np.ndarray, State]:
        # no_grad rather than inference_mode: the returned state may feed a later backward.
        with torch.no_grad():
            outputs, state = model(_inputs(model, inputs), _state(model, state, inputs))
        return outputs.cpu().numpy(), state

    def evaluate(self, model: SequenceModel, inputs: Arrays, targets: Arrays, state: State | None,
                 loss: Loss) -> tuple[float, State]:
        with torch.no_grad():
            outputs, state = model(_inputs(model, inputs), _state(model, state, inputs))
            value = _loss(loss, outputs, _targets(model, targets, loss))
        return value.item(), state

    def to_device(self, model: SequenceModel, inputs: Arrays, targets: Arrays, masks: Masks,
                  loss: Loss) -> _OnDevice:
        return _inputs(model, inputs), _targets(model, targets, loss), _masks(model, masks, inputs)

    def backward(self, model: SequenceModel, batch: _OnDevice, state: State,
                 loss: Loss) -> tuple[torch.Tensor, State]:
        inputs, targets, masks = batch
        model.zero_grad(set_to_none=True)  # replace, never accumulate, the last batch's gradients
        outputs, state = model(inputs, state, masks)
        value = _loss(loss, outputs, targets)
        value.backward()
        # backward() freed the graph behind the state, so keeping it attached could only fail later;
        # the loss without its graph, for a span of many steps.
        return value.detach(), tuple(part.detach() for part in state)

    def grad_norm_on_device(self, model: SequenceModel) -> torch.Tensor:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return torch.zeros((), device=model.context())
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))  # () float32

    def clip_gradients(self, model: SequenceModel, norm: torch.Tensor, max_norm: float) -> None:
        wide = norm.double()
        factor = torch.where(wide <= max_norm, torch.ones_like(wide), max_norm / wide).float()  # () : no read-back
        with torch.no_grad():
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.mul_(factor)

    def read(self, figures: Sequence[torch.Tensor]) -> np.ndarray:
        return torch.stack(list(figures)).cpu().numpy().astype(np.float64)

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


def _inputs(model: SequenceModel, inputs: Arrays) -> _Tensors:
    """(T, N) ids as int64, or (T, N, I) float32 for DENSE, on the model's device; a tuple's
    arrays by their own dtypes (`_member`)."""
    if isinstance(inputs, tuple):
        return tuple(_member(model, part) for part in inputs)
    return model.prepare_inputs(inputs)  # checked in NumPy (ids in [0, V), rank, dtype) before it moves


def _targets(model: SequenceModel, targets: Arrays, loss: Loss) -> _Tensors:
    """Ids as int64 for cross-entropy, values as float32 for MSE; a tuple's arrays by their dtypes."""
    if isinstance(targets, tuple):
        return tuple(_member(model, part) for part in targets)
    dtype = torch.float32 if Loss(loss) is Loss.MSE else torch.int64
    return torch.as_tensor(np.asarray(targets), dtype=dtype).to(model.context())


def _member(model: SequenceModel, part: np.ndarray) -> torch.Tensor:
    """An array of a tuple batch on the device: integers (ids, lengths) as int64, others float32."""
    array = np.asarray(part)
    dtype = torch.int64 if array.dtype.kind in "iu" else torch.float32
    return torch.as_tensor(array, dtype=dtype).to(model.context())


def _state(model: SequenceModel, state: Optional[State], inputs: Arrays) -> State:
    """None -> zeros; NumPy or tensors -> float32 tensors on the device (tensors pass unchanged)."""
    if state is None:
        return model.begin_state(np.shape(first_array(inputs))[1])
    device = model.context()
    return tuple(torch.as_tensor(part, dtype=torch.float32, device=device) for part in state)


def _masks(model: SequenceModel, masks: Masks, inputs: Arrays) -> Optional[list[torch.Tensor]]:
    """seqcore.dropout masks, checked against the model and batch, as float32 on the device."""
    checked = check_batch_masks(model.spec, masks, inputs)
    if checked is None:
        return None
    return [torch.tensor(mask, device=model.context()) for mask in checked]


def _check_lr(lr: float) -> None:
    # torch's SGD passes -lr as a float32 scalar: beyond ~3.4e38 it fails with a bare RuntimeError.
    if not 0 < lr <= float(np.finfo(np.float32).max):
        raise SeqcoreError(
            f"The learning rate must be positive and fit in float32 (<= 3.4e38), got {lr!r}.")


def _loss(kind: Loss, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over every target id, or mean of (y - y_hat)^2 (no 1/2); an
    encoder-decoder's masked losses of targets (ids (T, N), valid lengths (N,))."""
    if Loss(kind) in LOSSES:
        return masked_loss(outputs, targets[0], targets[1], kind)
    if Loss(kind) is Loss.MSE:
        if targets.shape != outputs.shape:
            raise SeqcoreError(f"MSE targets have shape {tuple(targets.shape)}, "
                               f"the outputs {tuple(outputs.shape)}.")
        return F.mse_loss(outputs, targets)
    if targets.shape != outputs.shape[:-1]:
        raise SeqcoreError(f"Cross-entropy targets have shape {tuple(targets.shape)}, "
                           f"expected {tuple(outputs.shape[:-1])}.")
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))
