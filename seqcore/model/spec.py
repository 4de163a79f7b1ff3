"""The frozen, validated description of a model: cell, sizes, input encoding, readout.

Plain data (string enums and numbers), so a spec prints, compares and round-trips through JSON
(`to_dict` / `from_dict`) inside every checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
from enum import Enum
from typing import Any, Mapping

from seqcore.checks import build, parse_enum, plain, positive_int
from seqcore.errors import SeqcoreError


class Cell(str, Enum):
    RNN = "rnn"
    GRU = "gru"
    LSTM = "lstm"


class Impl(str, Enum):
    SCRATCH = "scratch"  # cell equations written out with the framework's tensors
    CONCISE = "concise"  # the framework's fused built-in layer (gluon.rnn.* / torch.nn.*)


class Init(str, Enum):
    UNIFORM = "uniform"  # PyTorch's RNN default, U(-1/sqrt(H), 1/sqrt(H))
    NORMAL = "normal"  # d2l's scratch models, N(0, 0.01) weights and zero biases
    XAVIER = "xavier"  # Glorot uniform weights per gate block, zero biases
    GLUON = "gluon"  # Gluon's default initializer, U(-0.07, 0.07) weights and zero biases (d2l 1.0, MXNet)


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


class Bias(str, Enum):
    """The biases of each gate."""

    BOTH = "both"  # b_ih and b_hh, as cuDNN, Gluon and PyTorch hold them
    INPUT = "input"  # b_ih alone, one bias per gate: the d2l book's scratch cells (scratch only)


class Loss(str, Enum):
    CROSS_ENTROPY = "cross_entropy"  # mean over every target token
    MSE = "mse"  # mean of (y - y_hat)^2, no 1/2 factor, on every backend
    # Sequence to sequence (targets: ids (T, N) and valid lengths (N,); positions t >= valid are padding):
    MASKED = "masked"  # cross-entropy summed over the real target tokens / their number
    MASKED_D2L = "d2l"  # the book's: mean over all T*N positions of cross-entropy x 0/1 mask (d2l-en #2076)


GATES = {Cell.RNN: 1, Cell.GRU: 3, Cell.LSTM: 4}


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
    dropout: float = 0.0  # inverted dropout on layer k>=1 inputs and the head input (seqcore.model.dropout)
    bias: Bias = Bias.BOTH  # INPUT: no bias_hh parameters, only with Impl.SCRATCH

    def __post_init__(self) -> None:
        object.__setattr__(self, "cell", parse_enum(Cell, self.cell, "cell"))
        object.__setattr__(self, "impl", parse_enum(Impl, self.impl, "impl"))
        object.__setattr__(self, "input_kind", parse_enum(InputKind, self.input_kind, "input kind"))
        object.__setattr__(self, "activation", parse_enum(Activation, self.activation, "activation"))
        object.__setattr__(self, "readout", parse_enum(Readout, self.readout, "readout"))
        for field in ("input_size", "hidden_size", "output_size", "num_layers"):
            positive_int(getattr(self, field), field.replace("_", " "))
        if self.input_kind is InputKind.EMBEDDING:
            positive_int(self.embed_size, "embed size")
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
        object.__setattr__(self, "bias", parse_enum(Bias, self.bias, "bias"))
        if self.bias is Bias.INPUT and self.impl is not Impl.SCRATCH:
            raise SeqcoreError("the concise layers of both frameworks hold two biases per gate (b_ih and b_hh); "
                               "use --impl scratch for --bias input.")

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
        return plain(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelSpec":
        return build(cls, data)
