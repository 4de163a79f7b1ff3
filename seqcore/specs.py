"""Frozen, validated descriptions of a model and of a training run.

Everything here is plain data: string enums and numbers, so a spec prints, compares and
round-trips through JSON (`to_dict` / `from_dict`) inside every checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
from enum import Enum
from typing import Any, Mapping

from .errors import SeqcoreError


class Cell(str, Enum):
    RNN = "rnn"
    GRU = "gru"
    LSTM = "lstm"


class Impl(str, Enum):
    SCRATCH = "scratch"  # cell equations written out with the framework's tensors
    CONCISE = "concise"  # the framework's fused built-in layer (gluon.rnn.* / torch.nn.*)


class Device(str, Enum):
    CPU = "cpu"
    GPU = "gpu"
    AUTO = "auto"  # the GPU when the backend can really run on it, else the CPU


class Optimizer(str, Enum):
    SGD = "sgd"
    ADAM = "adam"


class Sampler(str, Enum):
    SEQUENTIAL = "sequential"  # rows continue across batches: state carried and detached
    RANDOM = "random"  # independent windows: state reset every batch


class Schedule(str, Enum):
    CONSTANT = "constant"
    COSINE = "cosine"  # per update, from lr down to 1% of lr at the last update
    STEP = "step"  # lr x lr_decay after every lr_decay_every epochs
    PLATEAU = "plateau"  # lr x lr_decay after each evaluation that does not beat the best so far


class Init(str, Enum):
    UNIFORM = "uniform"  # PyTorch's RNN default, U(-1/sqrt(H), 1/sqrt(H))
    NORMAL = "normal"  # d2l's scratch models, N(0, 0.01) weights and zero biases
    XAVIER = "xavier"  # Glorot uniform weights per gate block, zero biases


class InputKind(str, Enum):
    ONEHOT = "onehot"  # token ids, one-hot encoded to `input_size` features
    EMBEDDING = "embedding"  # token ids through a learned (input_size, embed_size) table
    DENSE = "dense"  # float features of width `input_size`, used as they are


class Activation(str, Enum):
    TANH = "tanh"
    RELU = "relu"


class Readout(str, Enum):
    SEQUENCE = "sequence"  # the output layer reads every time step: (T, N, O)
    LAST = "last"  # the output layer reads the last time step only: (N, O)


class GRUReset(str, Enum):
    """Where the GRU's reset gate r acts on the candidate n (only for Cell.GRU)."""

    AFTER = "after"  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn)): cuDNN, Gluon, PyTorch
    BEFORE = "before"  # n = tanh(W_in x + b_in + W_hn (r * h) + b_hn): Cho et al., d2l's scratch GRU


class Loss(str, Enum):
    CROSS_ENTROPY = "cross_entropy"  # mean over every target token
    MSE = "mse"  # mean of (y - y_hat)^2, no 1/2 factor, on every backend


GATES = {Cell.RNN: 1, Cell.GRU: 3, Cell.LSTM: 4}
FLOAT32_MAX = 3.4028234663852886e38


def parse_enum(kind: type[Enum], value: Any, field: str) -> Enum:
    """`kind(value)`, or a SeqcoreError listing the choices (e.g. a bad device given from Python)."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise SeqcoreError(f"Unknown {field} {value!r}: choose one of {choices}.") from None


def _positive_int(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SeqcoreError(f"{field} must be a positive integer, got {value!r}.")


def _positive_float(value: Any, field: str) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise SeqcoreError(f"{field} must be a positive number, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """Architecture: input encoding, recurrent stack, output layer.

    input_size: vocabulary size for ONEHOT and EMBEDDING inputs, feature width for DENSE.
    output_size: vocabulary size for language models, classes or regression width otherwise.
    Each state part is (L*D, N, H), indexed layer*D + direction as in PyTorch and Gluon
    (D = num_directions); layer outputs are (T, N, D*H), forward half first.
    """

    cell: Cell
    impl: Impl
    input_size: int
    hidden_size: int
    output_size: int
    num_layers: int = 1
    input_kind: InputKind = InputKind.ONEHOT
    embed_size: int = 0  # only for InputKind.EMBEDDING
    activation: Activation = Activation.TANH  # only for Cell.RNN; passed explicitly to both frameworks
    readout: Readout = Readout.SEQUENCE
    bidirectional: bool = False  # a reverse-time direction per layer, outputs concatenated
    gru_reset: GRUReset = GRUReset.AFTER  # only for Cell.GRU; BEFORE only with Impl.SCRATCH
    dropout: float = 0.0  # inverted dropout on layer k>=1 inputs and the head input (seqcore.dropout)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cell", parse_enum(Cell, self.cell, "cell"))
        object.__setattr__(self, "impl", parse_enum(Impl, self.impl, "impl"))
        object.__setattr__(self, "input_kind", parse_enum(InputKind, self.input_kind, "input kind"))
        object.__setattr__(self, "activation", parse_enum(Activation, self.activation, "activation"))
        object.__setattr__(self, "readout", parse_enum(Readout, self.readout, "readout"))
        for field in ("input_size", "hidden_size", "output_size", "num_layers"):
            _positive_int(getattr(self, field), field.replace("_", " "))
        if self.input_kind is InputKind.EMBEDDING:
            _positive_int(self.embed_size, "embed size")
        elif self.embed_size != 0:
            raise SeqcoreError("embed size is only used with embedding inputs; leave it at 0.")
        if not isinstance(self.bidirectional, bool):
            raise SeqcoreError(f"bidirectional must be true or false, got {self.bidirectional!r}.")
        object.__setattr__(self, "gru_reset", parse_enum(GRUReset, self.gru_reset, "gru reset"))
        if self.gru_reset is not GRUReset.AFTER and self.cell is not Cell.GRU:
            raise SeqcoreError(f"gru reset {self.gru_reset.value!r} only applies to the GRU cell; "
                               f"leave it at 'after' for {self.cell.value}.")
        if self.gru_reset is GRUReset.BEFORE and self.impl is not Impl.SCRATCH:
            raise SeqcoreError("the concise layers of both frameworks apply the GRU reset gate after "
                               "the hidden matmul; use --impl scratch for --gru-reset before.")
        if (isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float))
                or not math.isfinite(self.dropout) or not 0 <= self.dropout < 1):
            raise SeqcoreError(f"dropout must be a number in [0, 1), got {self.dropout!r}.")
        object.__setattr__(self, "dropout", float(self.dropout))

    @property
    def num_gates(self) -> int:
        return GATES[self.cell]

    @property
    def rnn_input_size(self) -> int:
        """Width of the vectors the first recurrent layer reads."""
        return self.embed_size if self.input_kind is InputKind.EMBEDDING else self.input_size

    @property
    def num_directions(self) -> int:
        """2 for a bidirectional stack, else 1 (D in the shapes below)."""
        return 2 if self.bidirectional else 1

    @property
    def output_width(self) -> int:
        """D*H: the width of every layer's outputs, of layer k>=1's inputs and of the head's input."""
        return self.num_directions * self.hidden_size

    @property
    def num_states(self) -> int:
        """LSTM carries (h, c); RNN and GRU carry h alone."""
        return 2 if self.cell is Cell.LSTM else 1

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSpec":
        return _build(cls, data)


@dataclasses.dataclass(frozen=True)
class TrainSpec:
    """How a model is trained. Defaults are the d2l chapter-8 language-model settings."""

    batch_size: int = 32
    num_steps: int = 35
    num_epochs: int = 500
    lr: float = 1.0
    clip: float = 1.0  # global-norm clipping threshold; 0 turns clipping off
    optimizer: Optimizer = Optimizer.SGD
    sampler: Sampler = Sampler.SEQUENTIAL
    # Row i of a batch continues row i of the previous batch: the state is carried (and
    # detached) across batches. True for sequential partitioning and sin->cos windows.
    carry_state: bool = True
    init: Init = Init.UNIFORM
    seed: int = 0
    schedule: Schedule = Schedule.CONSTANT
    lr_decay: float = 0.25  # the factor of the step and plateau schedules
    lr_decay_every: int = 10  # epochs between the step schedule's decays

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizer", parse_enum(Optimizer, self.optimizer, "optimizer"))
        object.__setattr__(self, "sampler", parse_enum(Sampler, self.sampler, "sampler"))
        object.__setattr__(self, "init", parse_enum(Init, self.init, "init"))
        object.__setattr__(self, "schedule", parse_enum(Schedule, self.schedule, "schedule"))
        for field in ("batch_size", "num_steps", "num_epochs", "lr_decay_every"):
            _positive_int(getattr(self, field), field.replace("_", " "))
        if not isinstance(self.carry_state, bool):
            raise SeqcoreError(f"carry state must be true or false, got {self.carry_state!r}.")
        if (not isinstance(self.lr_decay, (int, float)) or not math.isfinite(self.lr_decay)
                or not 0 < self.lr_decay <= 1):
            raise SeqcoreError(f"lr decay must be a number in (0, 1], got {self.lr_decay!r}.")
        _positive_float(self.lr, "learning rate")
        if self.lr > FLOAT32_MAX:  # frameworks apply the rate as a float32 scalar
            raise SeqcoreError(f"learning rate must fit in float32 (at most 3.4e38), got {self.lr!r}.")
        if not isinstance(self.clip, (int, float)) or not math.isfinite(self.clip) or self.clip < 0:
            raise SeqcoreError(f"clip must be a non-negative number (0 turns it off), got {self.clip!r}.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SeqcoreError(f"seed must be a non-negative integer, got {self.seed!r}.")

    def to_dict(self) -> dict[str, Any]:
        return _plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainSpec":
        return _build(cls, data)


def _plain(spec: Any) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, Enum) else v) for k, v in dataclasses.asdict(spec).items()}


def _build(cls: type, data: Mapping[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise SeqcoreError(f"Unknown {cls.__name__} field(s): {', '.join(unknown)}.")
    return cls(**data)
