"""The built-in fused layers (nn.RNN, nn.GRU, nn.LSTM) behind ScratchRecurrent's interface.

PyTorch names a layer's parameters weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k},
with exactly the canonical shapes and gate order, so mapping them is a rename.
"""
from __future__ import annotations

import torch
from torch import nn

from seqcore.specs import Activation, Cell

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (L, N, H)

_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _torch_name(canonical: str) -> str:
    """'l{k}.weight_ih' -> 'weight_ih_l{k}' (the nn.RNN attribute)."""
    layer, name = canonical.split(".")
    return f"{name}_{layer}"


class ConciseRecurrent(nn.Module):
    """nn.RNN / nn.GRU / nn.LSTM, time-major; the state always travels as a tuple."""

    def __init__(self, cell: Cell | str, input_size: int, hidden_size: int, num_layers: int,
                 activation: Activation | str = Activation.TANH) -> None:
        super().__init__()
        self.cell = Cell(cell)
        self.num_layers = num_layers
        if self.cell is Cell.RNN:
            # Passed explicitly: Gluon defaults to ReLU and PyTorch to tanh (FACTS.md).
            self.layer = nn.RNN(input_size, hidden_size, num_layers,
                                nonlinearity=Activation(activation).value, batch_first=False)
        else:
            fused = nn.GRU if self.cell is Cell.GRU else nn.LSTM
            self.layer = fused(input_size, hidden_size, num_layers, batch_first=False)

    def forward(self, inputs: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """inputs (T, N, I), state of (L, N, H) -> outputs (T, N, H) of the top layer, new state."""
        if self.cell is Cell.LSTM:
            outputs, (h, c) = self.layer(inputs, (state[0], state[1]))
            return outputs, (h, c)
        outputs, h = self.layer(inputs, state[0])
        return outputs, (h,)

    def parameter_map(self) -> dict[str, nn.Parameter]:
        """Parameters keyed 'l{k}.weight_ih' ... as in seqcore.params, without the 'rnn.' prefix."""
        names = (f"l{k}.{name}" for k in range(self.num_layers) for name in _PARAM_NAMES)
        return {name: getattr(self.layer, _torch_name(name)) for name in names}
