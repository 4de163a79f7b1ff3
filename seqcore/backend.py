"""The seam between the neutral core and a framework.

A backend is a package `backends.<name>` whose `create_backend(compile=False)` returns an object
with the methods of `Backend` below (compile: PyTorch's torch.compile of scratch models; MXNet
refuses it). Only NumPy arrays, floats, strings and opaque handles (model,
state, optimizer) cross the seam. Backends are imported only when chosen by name, and one
process never loads two frameworks (MXNet and PyTorch in one process have crashed).
"""
from __future__ import annotations

import importlib
from enum import Enum
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from seqcore.errors import SeqcoreError
from seqcore.model.spec import Loss, ModelSpec

BACKENDS = ("mxnet", "torch")  # import names: folder, CLI value and test id alike
EXTRAS = {"mxnet": "mxnet", "torch": "torch"}

Model = Any  # framework module holding the parameters, built from canonical NumPy parameters
State = Any  # framework arrays for the recurrent state, (L*D, N, H) each (D = spec.num_directions)
Trainer = Any  # framework optimizer bound to a model


class Device(str, Enum):
    CPU = "cpu"
    GPU = "gpu"
    AUTO = "auto"  # the GPU when the backend can really run on it, else the CPU


class Optimizer(str, Enum):
    SGD = "sgd"
    ADAM = "adam"


class Backend(Protocol):
    name: str

    def versions(self) -> dict[str, str]:
        """Framework and accelerator versions, for reports."""

    def resolve_device(self, device: Device) -> str:
        """'cpu' or 'gpu'; raises SeqcoreError when a GPU is asked for and unusable."""

    def build_model(self, spec: ModelSpec, params: Mapping[str, np.ndarray], device: str) -> Model:
        """A scratch or concise model (spec.impl) holding exactly `params` (canonical layout)."""

    def export_params(self, model: Model) -> dict[str, np.ndarray]:
        """The model's parameters in the canonical layout, float32 NumPy."""

    def begin_state(self, model: Model, batch_size: int) -> State:
        """Zero state for `batch_size` sequences."""

    def detach_state(self, state: State) -> State:
        """The same values, cut from the autograd graph (truncated backpropagation)."""

    def forward(self, model: Model, inputs: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """Inference without gradients: outputs as NumPy, (T, N, O) or (N, O) by spec.readout."""

    def forward_backward(self, model: Model, inputs: np.ndarray, targets: np.ndarray, state: State,
                         loss: Loss, masks: Sequence[np.ndarray] | None = None) -> tuple[float, State]:
        """Mean loss of one batch; leaves that batch's gradients (replacing older ones) on the model.

        masks: seqcore.model.dropout.draw_masks' float32 arrays (mask_shapes order: the inputs of layers
        k >= 1, then the head's input), moved to the device and multiplied in; None (or []) trains
        without dropout. `forward` and `evaluate` never apply dropout.
        """

    def train_span(self, model: Model, trainer: Trainer,
                   batches: Sequence[tuple[np.ndarray, np.ndarray, Sequence[np.ndarray] | None]],
                   state: State | None, *, loss: Loss, clip: float, lrs: Sequence[float] | None,
                   carry_state: bool) -> tuple[np.ndarray, np.ndarray, State]:
        """Train S steps without a host synchronisation: (S,) float64 losses, (S,) float64 global
        gradient norms (before clipping) and the state after the last step.

        batches: S (inputs, targets, masks) of one batch size, moved to the device at once. Each
        step is `forward_backward`, `grad_norm`, gradients x clip / norm when clip > 0 and the
        norm exceeds it (`seqcore.train.loop.clip_factor`, on the device), `step`, with the numbers
        of those calls bit for bit (seqcore.train.loop.train_steps). state: the carried state for
        the first step (detached here), None to begin one; carry_state: later steps carry the
        previous step's state, else begin afresh. lrs: the S learning rates, None to keep the
        trainer's. A NaN does not stop the span: the caller reads the losses.
        """

    def evaluate(self, model: Model, inputs: np.ndarray, targets: np.ndarray, state: State,
                 loss: Loss) -> tuple[float, State]:
        """Mean loss without gradients."""

    def gradients(self, model: Model) -> dict[str, np.ndarray]:
        """The current gradients in the canonical layout, float32 NumPy."""

    def grad_norm(self, model: Model) -> float:
        """Global L2 norm over every parameter's gradient."""

    def scale_gradients(self, model: Model, factor: float) -> None:
        """Multiply every gradient by `factor` in place."""

    def make_trainer(self, model: Model, optimizer: Optimizer, lr: float) -> Trainer:
        """An optimizer over every parameter; gradients are taken as already averaged."""

    def step(self, trainer: Trainer) -> None:
        """Apply one update with the gradients on the model."""

    def set_lr(self, trainer: Trainer, lr: float) -> None:
        """Change the learning rate (schedules are decided by the core)."""

    def export_trainer_state(self, model: Model, trainer: Trainer) -> dict[str, np.ndarray]:
        """The optimizer's state in canonical names, for checkpoints: {} for SGD (no momentum);
        for Adam `adam.step` (1,) int64 (updates applied) and `adam.m/<param>`, `adam.v/<param>`
        float32 shaped like the parameter (PyTorch's exp_avg / exp_avg_sq; MXNet's mean / var)."""

    def load_trainer_state(self, model: Model, trainer: Trainer, arrays: Mapping[str, np.ndarray]) -> None:
        """Restore `export_trainer_state` output (from either backend): the next `step` continues
        exactly as if the run had not stopped."""

    def state_to_numpy(self, state: State) -> list[np.ndarray]:
        """The recurrent state as float32 NumPy arrays, (L*D, N, H) each (h, then c for LSTM),
        entry layer*D + direction."""

    def state_from_numpy(self, model: Model, arrays: Sequence[np.ndarray]) -> State:
        """A state on the model's device holding `arrays` (what `state_to_numpy` gave)."""


def no_compile(name: str) -> str:
    """The sentence refusing --compile on a backend that has no torch.compile counterpart."""
    return (f"--compile is PyTorch's torch.compile; the {name} backend has no counterpart: "
            f"drop --compile or use --backend torch.")


def load_backend(name: str, compile: bool = False) -> Backend:
    """Import `backends.<name>` and create its backend, or explain in one sentence why not.

    compile: PyTorch only, scratch models train with their time loop through torch.compile."""
    if name not in BACKENDS:
        raise SeqcoreError(f"Unknown backend {name!r}: choose one of {', '.join(BACKENDS)}.")
    try:
        module = importlib.import_module(f"backends.{name}")
    except Exception as error:  # mxnet 1.9.1 under NumPy >= 1.24 raises AttributeError, not ImportError
        reason = f"{type(error).__name__}: {error}".strip()
        raise SeqcoreError(
            f"The {name} backend cannot be loaded ({reason}); install it with "
            f"`pip install -e '.[{EXTRAS[name]}]'`.") from error
    return module.create_backend(compile=compile)
