"""The seam between the neutral core and a framework.

Only NumPy arrays, floats, strings and opaque handles cross the seam. A backend is a package
`backends.<name>` whose `create_backend(compile=False)` returns a subclass of `Backend` below
(compile: PyTorch's torch.compile of scratch models; MXNet refuses it). The subclass supplies the
model, state and trainer methods and five small device primitives; the span loop (`train_span`)
and the NumPy-level conveniences over it are written once, here. Backends and their optional
parts are imported only when chosen by name (`load_backend`, `load_part`), and one process never
loads two frameworks (MXNet and PyTorch in one process have crashed).

Handles, owned by the backend that made them and meaningful to it alone:
  Model    a framework module holding the parameters (and, after `backward`, their gradients)
  State    the recurrent state on the device: a tuple of (L*D, N, H) arrays (D = spec.num_directions)
  Trainer  a framework optimizer bound to one model
  OnDevice one batch moved to the device by `to_device`
  Scalar   a () float32 figure on the device (a loss, a norm), read back only through `read`

A batch's `inputs` and `targets` are each an array or a tuple of arrays the model reads. Arrays
are time-major, (T, N, ...), or per row, (N, ...); the batch's rows N are axis 1 of the first
input array. Single arrays: inputs (T, N) ids or (T, N, I) floats (spec.input_kind); targets
shaped like the outputs without the last axis (ids, cross-entropy) or with it (MSE). In a tuple
(an encoder-decoder's (source ids, source lengths, decoder inputs) / (targets, target lengths)),
integer arrays stay integers and others become float32; which Loss reads them is the model's
business, not the seam's.
"""
from __future__ import annotations

import abc
import importlib
from enum import Enum
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

from seqcore.errors import SeqcoreError
from seqcore.model.spec import Loss, ModelSpec

BACKENDS = ("mxnet", "torch")  # import names: folder, CLI value and test id alike
EXTRAS = {"mxnet": "mxnet", "torch": "torch"}  # the pip extra that installs each framework
PARTS = {"distributed": "distributed", "interchange": "interchange", "bare": "bare", "onnx": "_onnx",
         "seq2seq": "seq2seq"}
PART_BACKENDS = {"onnx": ("torch",)}  # parts that only some backends have
PART_EXTRAS = {"onnx": "onnx"}  # parts that need more than the framework

Model = Any
State = Any
Trainer = Any
OnDevice = Any
Scalar = Any
Arrays = Union[np.ndarray, tuple]  # one array, or a tuple of arrays the model reads
Masks = Optional[Sequence[np.ndarray]]  # seqcore.model.dropout.draw_masks' arrays, or None
SpanBatch = tuple[Arrays, Arrays, Masks]  # inputs, targets, dropout masks


class Device(str, Enum):
    CPU = "cpu"
    GPU = "gpu"
    AUTO = "auto"  # the GPU when the backend can really run on it, else the CPU


class Optimizer(str, Enum):
    SGD = "sgd"
    ADAM = "adam"


def first_array(arrays: Arrays) -> np.ndarray:
    """The array itself, or the first of a tuple (the one that gives the batch's shape)."""
    return arrays[0] if isinstance(arrays, tuple) else arrays


def num_rows(inputs: Arrays) -> int:
    """N, the batch's rows: axis 1 of the (first) time-major input array."""
    return int(np.shape(first_array(inputs))[1])


class Backend(abc.ABC):
    name: str

    # -- the framework, the model and its state -----------------------------------------------

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """Framework and accelerator versions, for reports."""

    @abc.abstractmethod
    def resolve_device(self, device: Device) -> str:
        """'cpu' or 'gpu'; raises SeqcoreError when a GPU is asked for and unusable."""

    @abc.abstractmethod
    def build_model(self, spec: ModelSpec, params: Mapping[str, np.ndarray], device: str) -> Model:
        """A fresh scratch or concise model (spec.impl) holding exactly `params` (canonical layout)."""

    @abc.abstractmethod
    def export_params(self, model: Model) -> dict[str, np.ndarray]:
        """The model's parameters in the canonical layout, float32 NumPy."""

    @abc.abstractmethod
    def begin_state(self, model: Model, batch_size: int) -> State:
        """Zero state for `batch_size` sequences."""

    @abc.abstractmethod
    def detach_state(self, state: State) -> State:
        """The same values, cut from the autograd graph (truncated backpropagation)."""

    @abc.abstractmethod
    def state_to_numpy(self, state: State) -> list[np.ndarray]:
        """The recurrent state as float32 NumPy arrays, (L*D, N, H) each (h, then c for LSTM),
        entry layer*D + direction."""

    @abc.abstractmethod
    def state_from_numpy(self, model: Model, arrays: Sequence[np.ndarray]) -> State:
        """A state on the model's device holding `arrays` (what `state_to_numpy` gave)."""

    @abc.abstractmethod
    def forward(self, model: Model, inputs: Arrays, state: Optional[State]) -> tuple[np.ndarray, State]:
        """Inference without gradients: outputs as NumPy, (T, N, O) or (N, O) by spec.readout."""

    @abc.abstractmethod
    def evaluate(self, model: Model, inputs: Arrays, targets: Arrays, state: Optional[State],
                 loss: Loss) -> tuple[float, State]:
        """Mean loss without gradients (never with dropout)."""

    # -- the trainer ---------------------------------------------------------------------------

    @abc.abstractmethod
    def make_trainer(self, model: Model, optimizer: Optimizer, lr: float) -> Trainer:
        """An optimizer over every parameter; gradients are taken as already averaged."""

    @abc.abstractmethod
    def set_lr(self, trainer: Trainer, lr: float) -> None:
        """Change the learning rate (schedules are decided by the core)."""

    @abc.abstractmethod
    def step(self, trainer: Trainer) -> None:
        """Apply one update with the gradients on the model."""

    @abc.abstractmethod
    def export_trainer_state(self, model: Model, trainer: Trainer) -> dict[str, np.ndarray]:
        """The optimizer's state in canonical names, for checkpoints: {} for SGD (no momentum);
        for Adam `adam.step` (1,) int64 (updates applied) and `adam.m/<param>`, `adam.v/<param>`
        float32 shaped like the parameter (PyTorch's exp_avg / exp_avg_sq; MXNet's mean / var)."""

    @abc.abstractmethod
    def load_trainer_state(self, model: Model, trainer: Trainer, arrays: Mapping[str, np.ndarray]) -> None:
        """Restore `export_trainer_state` output (from either backend): the next `step` continues
        exactly as if the run had not stopped."""

    # -- the device primitives of a training step: no host synchronisation but `read` ----------

    @abc.abstractmethod
    def to_device(self, model: Model, inputs: Arrays, targets: Arrays, masks: Masks, loss: Loss) -> OnDevice:
        """One batch on the model's device, in the dtypes the model and `loss` read.

        masks: seqcore.model.dropout.draw_masks' float32 arrays (mask_shapes order: the inputs of
        layers k >= 1, then the head's input), checked against the model and the batch; None (or
        []) trains without dropout."""

    @abc.abstractmethod
    def backward(self, model: Model, batch: OnDevice, state: State, loss: Loss) -> tuple[Scalar, State]:
        """Forward and backward of one batch from `state`: the mean loss (detached from its
        graph) and the state after the batch. The batch's gradients replace the last ones."""

    @abc.abstractmethod
    def grad_norm_on_device(self, model: Model) -> Scalar:
        """The global L2 norm over every parameter's gradient (0 without gradients)."""

    @abc.abstractmethod
    def clip_gradients(self, model: Model, norm: Scalar, max_norm: float) -> None:
        """Multiply every gradient by `where(norm <= max_norm, 1, max_norm / norm)`, the factor
        computed in float64 and applied in float32 (as a Python float would be: a NaN norm
        scales, as seqcore.train.loop.clip_factor does), on the device."""

    @abc.abstractmethod
    def read(self, figures: Sequence[Scalar]) -> np.ndarray:
        """The host synchronisation: (len(figures),) float64, in order."""

    # -- written once, over the primitives ------------------------------------------------------

    def train_span(self, model: Model, trainer: Trainer, batches: Sequence[SpanBatch], state: Optional[State],
                   *, loss: Loss, clip: float, lrs: Optional[Sequence[float]],
                   carry_state: bool) -> tuple[np.ndarray, np.ndarray, State]:
        """Train S steps with one host synchronisation: (S,) float64 losses, (S,) float64 global
        gradient norms (before clipping) and the state after the last step.

        batches: S (inputs, targets, masks) of one batch size, all moved to the device before the
        first step. state: the carried state for the first step (detached here), None to begin
        one; carry_state: later steps carry the previous step's state, else begin afresh. lrs: the
        S learning rates, None to keep the trainer's. clip > 0 scales the gradients of a step
        whose norm exceeds it down to it. A NaN does not stop the span: the caller reads the losses.
        """
        if not batches:
            return np.zeros(0), np.zeros(0), state
        moved = [self.to_device(model, inputs, targets, masks, loss) for inputs, targets, masks in batches]
        rows = num_rows(batches[0][0])
        values, norms = [], []
        for k, batch in enumerate(moved):
            if lrs is not None:
                self.set_lr(trainer, lrs[k])
            if carry_state and state is not None:
                state = self.detach_state(state)
            else:
                state = self.begin_state(model, rows)
            value, state = self.backward(model, batch, state, loss)
            norm = self.grad_norm_on_device(model)
            if clip > 0:
                self.clip_gradients(model, norm, clip)
            self.step(trainer)
            values.append(value)
            norms.append(norm)
        figures = self.read([*values, *norms])  # (2S,): the one read-back
        return figures[:len(moved)], figures[len(moved):], state

    def forward_backward(self, model: Model, inputs: Arrays, targets: Arrays, state: Optional[State],
                         loss: Loss, masks: Masks = None) -> tuple[float, State]:
        """One batch's mean loss, read back; its gradients (replacing older ones) stay on the model.
        state None begins one."""
        if state is None:
            state = self.begin_state(model, num_rows(inputs))
        value, state = self.backward(model, self.to_device(model, inputs, targets, masks, loss), state, loss)
        return float(self.read([value])[0]), state

    def grad_norm(self, model: Model) -> float:
        """The global L2 norm of the gradients, read back."""
        return float(self.read([self.grad_norm_on_device(model)])[0])


def no_compile(name: str) -> str:
    """The sentence refusing --compile on a backend that has no torch.compile counterpart."""
    return (f"--compile is PyTorch's torch.compile; the {name} backend has no counterpart: "
            f"drop --compile or use --backend torch.")


def load_backend(name: str, compile: bool = False) -> Backend:
    """Import `backends.<name>` and create its backend, or explain in one sentence why not.

    compile: PyTorch only, scratch models train with their time loop through torch.compile."""
    return load_part(name, None).create_backend(compile=compile)


def load_part(name: str, part: Optional[str]):
    """The module `backends.<name>` (part None) or one of its optional parts: 'distributed' (the
    data-parallel Communicator), 'interchange' (foreign weight files), 'bare' (the benchmark's
    framework-only loop), 'seq2seq' (the encoder-decoder and its decoding step model, Translator)
    or 'onnx' (PyTorch only); one sentence when it cannot be loaded."""
    if name not in BACKENDS:
        raise SeqcoreError(f"Unknown backend {name!r}: choose one of {', '.join(BACKENDS)}.")
    if part is not None and part not in PARTS:
        raise SeqcoreError(f"Unknown part {part!r} of a backend: choose one of {', '.join(PARTS)}.")
    if name not in PART_BACKENDS.get(part, BACKENDS):
        raise SeqcoreError(f"The {name} backend has no {part} part; it comes with "
                           f"{' or '.join(PART_BACKENDS[part])}.")
    package = _import(f"backends.{name}", f"The {name} backend", EXTRAS[name])
    if part is None:
        return package
    return _import(f"backends.{name}.{PARTS[part]}", f"The {part} part of the {name} backend",
                   PART_EXTRAS.get(part, EXTRAS[name]))


def _import(module: str, what: str, extra: str):
    try:
        return importlib.import_module(module)
    except Exception as error:  # mxnet 1.9.1 under NumPy >= 1.24 raises AttributeError, not ImportError
        reason = f"{type(error).__name__}: {error}".strip()
        raise SeqcoreError(f"{what} cannot be loaded ({reason}); install it with "
                           f"`pip install -e '.[{extra}]'`.") from error
