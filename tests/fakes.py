"""The tests' one stand-in for a framework: a real `seqcore.backend.Backend` written in NumPy.

Its model is the smallest one the canonical layout holds: one layer, one direction, the Elman
RNN cell (`tanh` or `relu`), one-hot or dense inputs, a sequence or last-step readout, and the
head's dropout mask. Everything is computed, nothing is scripted: the forward pass is
seqcore.model.reference's equations (tests/test_fakes.py checks it against the oracle), the
gradients are backpropagation through time over the batch (checked by finite differences), SGD
and Adam update the parameters as PyTorch does (the Adam state in the seam's canonical names).
So the run layer, the training loop and the jobs can be tested against numbers in milliseconds,
with no framework loaded, and the span loop (`Backend.train_span`) is the seam's own.

Arithmetic is float64 (finite differences need the digits), but what a device would hold between
calls (parameters, Adam's moments, the recurrent state) is rounded to float32 where it is stored,
so a checkpoint (float32) holds exactly the model's values and a resumed run continues bit for bit. `calls` records the primitives the loop
called, in order, for tests that pin the protocol; `on_backward(updates)` runs before each
backward, so a test can act (send a signal) while a given step trains.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from seqcore.backend import Backend, Device, Optimizer
from seqcore.errors import SeqcoreError
from seqcore.model.dropout import check_masks
from seqcore.model.params import check_params, check_trainer_state
from seqcore.model.spec import Activation, Cell, InputKind, Loss, ModelSpec, Readout
from seqcore.train.loop import clip_factor

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults (Gluon's too)
L0 = ("rnn.l0.weight_ih", "rnn.l0.weight_hh", "rnn.l0.bias_ih", "rnn.l0.bias_hh")


@dataclasses.dataclass
class FakeModel:
    spec: ModelSpec
    params: dict[str, np.ndarray]  # canonical names, float64
    grads: Optional[dict[str, np.ndarray]] = None  # of the last backward, None before one
    updates: int = 0  # steps applied (Adam's step count)


@dataclasses.dataclass
class FakeTrainer:
    model: FakeModel
    optimizer: Optimizer
    lr: float
    m: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)  # Adam's moments, by parameter
    v: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class OnDevice:
    x: np.ndarray  # (T, N, I) float64, encoded
    y: np.ndarray  # targets: (T, N) / (N,) ids, or (T, N, O) / (N, O) floats
    masks: Optional[list[np.ndarray]]  # [the head's input mask] or None


def f32(array: np.ndarray) -> np.ndarray:
    """float32 values (what a device stores), held as float64."""
    return np.asarray(array, np.float32).astype(np.float64)


def supports(spec: ModelSpec) -> Optional[str]:
    """None when the fake can build `spec`, else what it lacks."""
    if spec.cell is not Cell.RNN or spec.num_layers != 1 or spec.bidirectional:
        return "one unidirectional RNN layer"
    if spec.input_kind is InputKind.EMBEDDING:
        return "one-hot or dense inputs"
    return None


def encode(spec: ModelSpec, inputs: np.ndarray) -> np.ndarray:
    """(T, N) ids or (T, N, I) floats -> (T, N, I) float64."""
    if spec.input_kind is InputKind.DENSE:
        return np.asarray(inputs, np.float64)
    return np.eye(spec.input_size)[np.asarray(inputs, np.int64)]


def quiet(function: Callable) -> Callable:
    """A device computes NaN and inf without warnings (a fresh errstate per call: they nest)."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            return function(*args, **kwargs)
    return call


@quiet
def forward(spec: ModelSpec, params: Mapping[str, np.ndarray], x: np.ndarray, h0: np.ndarray,
            masks: Optional[Sequence[np.ndarray]] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (T, N, I) encoded, h0 (N, H) -> outputs ((T, N, O) or (N, O)), hs (T + 1, N, H) with hs[0]
    = h0, and the head's input features."""
    w_ih, w_hh, b_ih, b_hh = (params[name] for name in L0)
    hs = [h0]
    for x_t in x:
        z = x_t @ w_ih.T + b_ih + hs[-1] @ w_hh.T + b_hh
        hs.append(np.tanh(z) if spec.activation is Activation.TANH else np.maximum(z, 0.0))
    hs = np.stack(hs)
    features = hs[-1] if spec.readout is Readout.LAST else hs[1:]
    if masks:
        features = features * masks[-1]
    return features @ params["head.weight"].T + params["head.bias"], hs, features


@quiet
def loss_and_grad(loss: Loss, outputs: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """The mean loss and d loss / d outputs."""
    if Loss(loss) is Loss.MSE:
        diff = outputs - np.asarray(targets, np.float64)
        return float(np.mean(diff ** 2)), 2.0 * diff / diff.size
    if Loss(loss) is not Loss.CROSS_ENTROPY:
        raise SeqcoreError(f"The fake backend computes cross-entropy and MSE, not {Loss(loss).value}.")
    shifted = outputs - outputs.max(axis=-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    ids = np.asarray(targets, np.int64)[..., None]
    value = -np.take_along_axis(log_p, ids, axis=-1).mean()
    grad = np.exp(log_p)
    np.put_along_axis(grad, ids, np.take_along_axis(grad, ids, axis=-1) - 1.0, axis=-1)
    return float(value), grad / ids.size


@quiet
def backward(spec: ModelSpec, params: Mapping[str, np.ndarray], batch: OnDevice, h0: np.ndarray,
             loss: Loss) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """The mean loss, every parameter's gradient (backpropagation through the batch's T steps,
    the state h0 held constant) and the final state (N, H)."""
    outputs, hs, features = forward(spec, params, batch.x, h0, batch.masks)
    value, d_out = loss_and_grad(loss, outputs, batch.y)
    flat_out, flat_features = d_out.reshape(-1, d_out.shape[-1]), features.reshape(-1, features.shape[-1])
    grads = {"head.weight": flat_out.T @ flat_features, "head.bias": flat_out.sum(axis=0)}
    d_features = d_out @ params["head.weight"]
    if batch.masks:
        d_features = d_features * batch.masks[-1]
    d_hs = np.zeros_like(hs[1:])  # (T, N, H): what the head sends back to each step's h
    if spec.readout is Readout.LAST:
        d_hs[-1] = d_features
    else:
        d_hs[:] = d_features
    w_hh = params["rnn.l0.weight_hh"]
    g_ih, g_hh = np.zeros_like(params["rnn.l0.weight_ih"]), np.zeros_like(w_hh)
    g_b = np.zeros_like(params["rnn.l0.bias_ih"])
    d_next = np.zeros_like(h0)
    for t in range(len(batch.x) - 1, -1, -1):
        h = hs[t + 1]
        d_h = d_hs[t] + d_next
        d_z = d_h * (1.0 - h ** 2) if spec.activation is Activation.TANH else d_h * (h > 0)
        g_ih += d_z.T @ batch.x[t]
        g_hh += d_z.T @ hs[t]
        g_b += d_z.sum(axis=0)
        d_next = d_z @ w_hh
    grads.update({"rnn.l0.weight_ih": g_ih, "rnn.l0.weight_hh": g_hh, "rnn.l0.bias_ih": g_b,
                  "rnn.l0.bias_hh": g_b.copy()})  # both biases add into z: equal gradients
    return value, grads, hs[-1]


class NumpyBackend(Backend):
    name = "fake"

    def __init__(self, on_backward: Optional[Callable[[int], None]] = None):
        self.on_backward = on_backward
        # ("begin", N), ("detach",), ("to_device", (T, N), masks or None), ("backward", state in, loss),
        # ("scale", factor), ("step", lr), ("span", steps), ("evaluate", state in), ("forward", input shape)
        self.calls: list[tuple] = []

    # -- the framework, the model and its state -------------------------------------------------

    def versions(self) -> dict[str, str]:
        return {"numpy": np.__version__}

    def resolve_device(self, device: Device) -> str:
        if Device(device) is Device.GPU:
            raise SeqcoreError("The fake backend has no GPU; use --device cpu or auto.")
        return "cpu"

    def build_model(self, spec: ModelSpec, params: Mapping[str, np.ndarray], device: str) -> FakeModel:
        lacks = supports(spec)
        if lacks:
            raise SeqcoreError(f"The fake backend builds {lacks}, not this {spec.cell.value} model.")
        checked = check_params(spec, params)
        return FakeModel(spec, {name: value.astype(np.float64) for name, value in checked.items()})

    def export_params(self, model: FakeModel) -> dict[str, np.ndarray]:
        return {name: value.astype(np.float32) for name, value in model.params.items()}

    def begin_state(self, model: FakeModel, batch_size: int) -> tuple[np.ndarray]:
        self.calls.append(("begin", batch_size))
        return (np.zeros((1, batch_size, model.spec.hidden_size)),)

    def detach_state(self, state: tuple[np.ndarray]) -> tuple[np.ndarray]:
        self.calls.append(("detach",))
        return (state[0].copy(),)

    def state_to_numpy(self, state: tuple[np.ndarray]) -> list[np.ndarray]:
        return [state[0].astype(np.float32)]

    def state_from_numpy(self, model: FakeModel, arrays: Sequence[np.ndarray]) -> tuple[np.ndarray]:
        return (f32(arrays[0]),)

    def forward(self, model: FakeModel, inputs: np.ndarray, state) -> tuple[np.ndarray, tuple[np.ndarray]]:
        self.calls.append(("forward", np.shape(inputs)))
        x = encode(model.spec, self._single(inputs))
        state = state if state is not None else self.begin_state(model, x.shape[1])
        outputs, hs, _ = forward(model.spec, model.params, x, state[0][0])
        return outputs.astype(np.float32), (f32(hs[-1][None]),)

    def evaluate(self, model: FakeModel, inputs, targets, state, loss: Loss) -> tuple[float, tuple[np.ndarray]]:
        self.calls.append(("evaluate", None if state is None else state[0].copy()))
        x = encode(model.spec, self._single(inputs))
        h0 = np.zeros((x.shape[1], model.spec.hidden_size)) if state is None else state[0][0]
        outputs, hs, _ = forward(model.spec, model.params, x, h0)
        return loss_and_grad(loss, outputs, self._single(targets))[0], (f32(hs[-1][None]),)

    # -- the trainer -------------------------------------------------------------------------------

    def make_trainer(self, model: FakeModel, optimizer: Optimizer, lr: float) -> FakeTrainer:
        return FakeTrainer(model, Optimizer(optimizer), float(lr))

    def set_lr(self, trainer: FakeTrainer, lr: float) -> None:
        trainer.lr = float(lr)

    @quiet
    def step(self, trainer: FakeTrainer) -> None:
        self.calls.append(("step", trainer.lr))
        model = trainer.model
        model.updates += 1
        for name, grad in (model.grads or {}).items():
            if trainer.optimizer is Optimizer.SGD:
                model.params[name] = f32(model.params[name] - trainer.lr * grad)
                continue
            (beta1, beta2), t = ADAM_BETAS, model.updates
            m = beta1 * trainer.m.get(name, 0.0) + (1 - beta1) * grad
            v = beta2 * trainer.v.get(name, 0.0) + (1 - beta2) * grad ** 2
            trainer.m[name], trainer.v[name] = m, v = f32(m), f32(v)
            step = trainer.lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + ADAM_EPS)
            model.params[name] = f32(model.params[name] - step)

    def export_trainer_state(self, model: FakeModel, trainer: FakeTrainer) -> dict[str, np.ndarray]:
        if trainer.optimizer is Optimizer.SGD:
            return {}
        arrays = {"adam.step": np.array([model.updates], np.int64)}
        for name, value in model.params.items():
            for key, moments in (("m", trainer.m), ("v", trainer.v)):
                arrays[f"adam.{key}/{name}"] = np.asarray(moments.get(name, np.zeros_like(value)), np.float32)
        return arrays

    def load_trainer_state(self, model: FakeModel, trainer: FakeTrainer, arrays: Mapping[str, np.ndarray]) -> None:
        adam = trainer.optimizer is Optimizer.ADAM
        check_trainer_state(model.spec, adam, arrays)
        if adam:
            model.updates = int(arrays["adam.step"][0])
            trainer.m = {name: np.asarray(arrays[f"adam.m/{name}"], np.float64) for name in model.params}
            trainer.v = {name: np.asarray(arrays[f"adam.v/{name}"], np.float64) for name in model.params}

    # -- the device primitives -----------------------------------------------------------------------

    def to_device(self, model: FakeModel, inputs, targets, masks, loss: Loss) -> OnDevice:
        x = encode(model.spec, self._single(inputs))
        checked = check_masks(model.spec, masks, *x.shape[:2])
        self.calls.append(("to_device", x.shape[:2], checked))
        return OnDevice(x, np.asarray(self._single(targets)), checked)

    def backward(self, model: FakeModel, batch: OnDevice, state, loss: Loss) -> tuple[float, tuple[np.ndarray]]:
        if self.on_backward is not None:
            self.on_backward(model.updates)
        value, model.grads, final = backward(model.spec, model.params, batch, state[0][0], loss)
        self.calls.append(("backward", state[0].copy(), value))
        return value, (f32(final[None]),)

    @quiet
    def grad_norm_on_device(self, model: FakeModel) -> float:
        if not model.grads:
            return 0.0
        return float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in model.grads.values())))

    @quiet
    def clip_gradients(self, model: FakeModel, norm: float, max_norm: float) -> None:
        factor = clip_factor(norm, max_norm)
        if factor != 1.0:
            self.calls.append(("scale", factor))
            model.grads = {name: grad * factor for name, grad in model.grads.items()}

    def read(self, figures: Sequence[Any]) -> np.ndarray:
        return np.array([float(value) for value in figures], np.float64)

    def train_span(self, model, trainer, batches, state, **options):
        self.calls.append(("span", len(batches)))
        return super().train_span(model, trainer, batches, state, **options)

    # -- the fake's own -----------------------------------------------------------------------------

    def kinds(self) -> list[str]:
        """The recorded calls' names, in order."""
        return [call[0] for call in self.calls]

    @staticmethod
    def _single(arrays):
        if isinstance(arrays, tuple):
            raise SeqcoreError("The fake backend's model reads one input array and one target array.")
        return arrays
