"""Recurrent cells written out from their equations with plain tensor ops (seqcore/reference.py).

Every cell holds the canonical parameters of one layer, weight_ih (G*H, I), weight_hh (G*H, H),
bias_ih (G*H,), bias_hh (G*H,), with the gate order of PyTorch and Gluon (LSTM i, f, g, o;
GRU r, z, n). A step takes the input projection W_ih x + b_ih already computed: the stack
projects all T steps of a layer in one matmul before its time loop, which leaves one (N, H) x
(H, G*H) matmul per step on the sequential path.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqcore.specs import GATES, Activation, Cell

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (N, H) for a cell, (L, N, H) for a stack


class _ScratchCell(nn.Module):
    num_gates = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        width = self.num_gates * hidden_size
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(width, input_size))
        self.weight_hh = nn.Parameter(torch.empty(width, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(width))
        self.bias_hh = nn.Parameter(torch.empty(width))
        # PyTorch's default, so a bare cell is usable; models load canonical values over it.
        bound = 1.0 / math.sqrt(hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """(..., I) -> (..., G*H): W_ih x + b_ih, for any number of leading (time, batch) axes."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def forward(self, x: torch.Tensor, state: State) -> State:
        """One time step from inputs (N, I): the new state, whose first entry is the output h."""
        return self._recur(self._project(x), state)

    def _recur(self, xw: torch.Tensor, state: State) -> State:
        """The rest of one step, from xw = W_ih x + b_ih (N, G*H) and the state."""
        raise NotImplementedError


class ScratchRNNCell(_ScratchCell):
    """h' = act(W_ih x + b_ih + W_hh h + b_hh)."""

    num_gates = GATES[Cell.RNN]

    def __init__(self, input_size: int, hidden_size: int,
                 activation: Activation | str = Activation.TANH) -> None:
        super().__init__(input_size, hidden_size)
        self.activation = Activation(activation)

    def _recur(self, xw: torch.Tensor, state: State) -> State:
        z = xw + F.linear(state[0], self.weight_hh, self.bias_hh)  # (N, H)
        return (torch.tanh(z) if self.activation is Activation.TANH else torch.relu(z),)


class ScratchGRUCell(_ScratchCell):
    """Gates r, z, n; the reset gate multiplies the hidden projection with its bias b_hn."""

    num_gates = GATES[Cell.GRU]

    def _recur(self, xw: torch.Tensor, state: State) -> State:
        h = state[0]
        xr, xz, xn = xw.chunk(3, dim=-1)  # (N, H) each
        hr, hz, hn = F.linear(h, self.weight_hh, self.bias_hh).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return ((1.0 - z) * n + z * h,)


class ScratchLSTMCell(_ScratchCell):
    """Gates i, f, g, o: c' = f*c + i*g, h' = o*tanh(c')."""

    num_gates = GATES[Cell.LSTM]

    def _recur(self, xw: torch.Tensor, state: State) -> State:
        h, c = state
        i, f, g, o = (xw + F.linear(h, self.weight_hh, self.bias_hh)).chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


def make_cell(cell: Cell | str, input_size: int, hidden_size: int,
              activation: Activation | str = Activation.TANH) -> _ScratchCell:
    """The scratch cell for `cell`; `activation` only matters for the plain RNN."""
    cell = Cell(cell)
    if cell is Cell.RNN:
        return ScratchRNNCell(input_size, hidden_size, activation)
    return (ScratchGRUCell if cell is Cell.GRU else ScratchLSTMCell)(input_size, hidden_size)


class ScratchRecurrent(nn.Module):
    """A stack of `num_layers` scratch cells run over time, time-major like nn.RNN."""

    def __init__(self, cell: Cell | str, input_size: int, hidden_size: int, num_layers: int,
                 activation: Activation | str = Activation.TANH) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            make_cell(cell, input_size if k == 0 else hidden_size, hidden_size, activation)
            for k in range(num_layers))

    def forward(self, inputs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """inputs (T, N, I), state of (L, N, H) -> outputs (T, N, H) of the top layer, new state."""
        layer_input = inputs
        finals: list[State] = []  # per layer: its last (h,) or (h, c), each (N, H)
        for k, cell in enumerate(self.layers):
            s = tuple(part[k] for part in state)
            xw = cell._project(layer_input)  # (T, N, G*H): every step in one matmul
            outputs = []
            for t in range(xw.shape[0]):
                s = cell._recur(xw[t], s)
                outputs.append(s[0])
            layer_input = torch.stack(outputs)  # (T, N, H)
            finals.append(s)
        return layer_input, tuple(torch.stack(parts) for parts in zip(*finals))

    def cells(self) -> list[_ScratchCell]:
        """The cells, bottom layer first."""
        return list(self.layers)

    def parameter_map(self) -> dict[str, nn.Parameter]:
        """Parameters keyed 'l{k}.weight_ih' ... as in seqcore.params, without the 'rnn.' prefix."""
        return {f"l{k}.{name}": value for k, cell in enumerate(self.layers)
                for name, value in cell.named_parameters()}
