"""The built-in fused layers (nn.RNN, nn.GRU, nn.LSTM) behind ScratchRecurrent's interface.

PyTorch names a layer's parameters weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}
(and weight_ih_l{k}_reverse ... for the reverse direction), with exactly the canonical shapes
and gate order, so mapping them is a rename.

With dropout > 0 and several layers the stack is one single-layer fused layer per layer, with
seqcore.model.dropout's masks multiplied in between: the fused layer's own `dropout=` draws its masks
inside the framework, which no other framework (or the NumPy reference) can reproduce.
"""
from __future__ import annotations

import torch
from torch import nn

from seqcore.model.params import DIRECTION_SUFFIXES
from seqcore.model.spec import Activation, Cell

State = tuple[torch.Tensor, ...]  # (h,) or (h, c), each (L*D, N, H)

_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class ConciseRecurrent(nn.Module):
    """nn.RNN / nn.GRU / nn.LSTM, time-major; the state always travels as a tuple.

    dropout only decides the structure (see above); the masks come with each forward call.
    """

    def __init__(self, cell: Cell | str, input_size: int, hidden_size: int, num_layers: int,
                 activation: Activation | str = Activation.TANH, bidirectional: bool = False,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.cell = Cell(cell)
        self.num_layers = num_layers
        self.num_directions = 2 if bidirectional else 1
        # per layer: (the fused layer holding it, its layer index inside that fused layer)
        if dropout > 0 and num_layers > 1:
            width = self.num_directions * hidden_size
            self.layers = nn.ModuleList(
                self._fused(input_size if k == 0 else width, hidden_size, 1, activation, bidirectional)
                for k in range(num_layers))
            self._where = [(k, 0) for k in range(num_layers)]
        else:
            self.layers = nn.ModuleList(
                [self._fused(input_size, hidden_size, num_layers, activation, bidirectional)])
            self._where = [(0, k) for k in range(num_layers)]

    def _fused(self, input_size: int, hidden_size: int, num_layers: int,
               activation: Activation | str, bidirectional: bool) -> nn.Module:
        options = dict(batch_first=False, bidirectional=bidirectional)
        if self.cell is Cell.RNN:
            # Passed explicitly: Gluon defaults to ReLU and PyTorch to tanh (FACTS.md).
            return nn.RNN(input_size, hidden_size, num_layers,
                          nonlinearity=Activation(activation).value, **options)
        fused = nn.GRU if self.cell is Cell.GRU else nn.LSTM
        return fused(input_size, hidden_size, num_layers, **options)

    def forward(self, inputs: torch.Tensor, state: State,
                masks: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, State]:
        """inputs (T, N, I), state of (L*D, N, H) -> outputs (T, N, D*H) of the top layer, new state.

        masks: (T, N, D*H) dropout masks multiplying the inputs of layers 1 .. L-1 (only with
        the per-layer structure, i.e. built with dropout > 0), or None.
        """
        per_layer = len(self.layers) > 1
        outputs, finals = inputs, []
        for k, layer in enumerate(self.layers):
            if per_layer:
                if masks is not None and k > 0:
                    outputs = outputs * masks[k - 1]
                rows = slice(k * self.num_directions, (k + 1) * self.num_directions)
                part_state = tuple(part[rows] for part in state)  # (D, N, H) each
            else:
                part_state = state
            if self.cell is Cell.LSTM:
                outputs, (h, c) = layer(outputs, (part_state[0], part_state[1]))
                finals.append((h, c))
            else:
                outputs, h = layer(outputs, part_state[0])
                finals.append((h,))
        new_state = finals[0] if not per_layer else tuple(torch.cat(parts) for parts in zip(*finals))
        return outputs, new_state

    def parameter_map(self) -> dict[str, nn.Parameter]:
        """Parameters keyed 'l{k}.weight_ih' ('l{k}.weight_ih_reverse' ...) as in seqcore.model.params,
        without the 'rnn.' prefix."""
        found = {}
        for k, (module, inner) in enumerate(self._where):
            for suffix in DIRECTION_SUFFIXES[:self.num_directions]:
                for name in _PARAM_NAMES:  # torch: weight_ih_l{inner}[_reverse]
                    found[f"l{k}.{name}{suffix}"] = getattr(self.layers[module], f"{name}_l{inner}{suffix}")
        return found
